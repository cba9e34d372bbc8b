"""Approving in the console publishes the job exactly as `likeness review approve` does: the console calls
`flows.review.apply_decision`, which runs the publish flow (consent verified again, label, watermark,
C2PA, upload) — here for real, under a temporary Prefect API, on SQLite and SeaweedFS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from console.web import WebConfig
from governance import jobs
from governance.enums import JobState
from governance.schema import AuditEvent, Publication
from governance.uow import unit_of_work
from tests.web.conftest import build_world, error_of, store_job_media

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def test_web_approval_publishes_the_render(
    sqlite_db_url: str, tmp_path: Path, s3_server: Any, prefect_api: str, sample_media: dict[str, Path]
) -> None:
    web = build_world(tmp_path, sqlite_db_url, s3=s3_server,
                      config=lambda clock: WebConfig(clock=clock, publish_on_approval=True))
    try:
        parts = store_job_media(web, sample_media)
        job_id = web.job_awaiting_review(portrait=parts["portrait"], driving=parts["driving"], output=parts["output"])
        client = web.client("reviewer")
        response = web.post(client, f"/review/jobs/{job_id}", f"/review/jobs/{job_id}/decision",
                            {"verdict": "approve", "reason": "looks right"})
        assert response.status_code == 303, error_of(response)
        flash = client.get(response.headers["location"]).text
        assert "approved; now published (published as" in flash
        with unit_of_work(web.sf) as db:
            assert jobs.get_job(db, job_id).state == JobState.published
            publication = db.scalars(select(Publication).where(Publication.job_id == job_id)).one()
            actions = list(db.scalars(select(AuditEvent.action).where(AuditEvent.job_id == job_id)
                                      .order_by(AuditEvent.seq)))
        assert web.runtime.store.exists("published", publication.object_key)
        assert actions.index("review.approved") < actions.index("job.publishing") < actions.index("publication.created")
    finally:
        for c in web.clients:
            c.close()
        web.runtime.close()
