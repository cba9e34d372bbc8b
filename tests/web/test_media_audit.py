"""Watching a job's media in the console is an audited read, once per viewing (not per range request)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from governance.schema import AuditEvent
from governance.uow import unit_of_work
from tests.web.conftest import WebWorld, store_job_media

pytestmark = pytest.mark.s3


def media_reads(web: WebWorld) -> list[tuple[str, str | None, str]]:
    with unit_of_work(web.sf) as db:
        return [
            (e.actor, e.job_id, e.details["what"])
            for e in db.scalars(
                select(AuditEvent).where(AuditEvent.action == "access.read").order_by(AuditEvent.seq)
            )
        ]


def test_media_reads_are_on_record(web_s3: WebWorld, sample_media: dict[str, Path]) -> None:
    web = web_s3
    parts = store_job_media(web, sample_media)
    job_id = web.job_awaiting_review(
        portrait=parts["portrait"], driving=parts["driving"], output=parts["output"]
    )
    reviewer, auditor = web.client("reviewer"), web.client("auditor")
    assert reviewer.get(f"/jobs/{job_id}/media/output").status_code == 200
    assert reviewer.get(f"/jobs/{job_id}/media/output", headers={"range": "bytes=0-99"}).status_code == 206
    assert reviewer.get(f"/jobs/{job_id}/media/output", headers={"range": "bytes=100-199"}).status_code == 206
    assert auditor.get(f"/jobs/{job_id}/media/portrait").status_code == 200
    assert web.client("operator").get(f"/jobs/{job_id}/media/portrait").status_code == 403
    assert media_reads(web) == [
        ("reviewer@example.org", job_id, "job_media.output"),
        ("reviewer@example.org", job_id, "job_media.output"),
        ("auditor@example.org", job_id, "job_media.portrait"),
    ]
