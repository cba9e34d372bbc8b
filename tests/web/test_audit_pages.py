"""The auditor's pages over HTTP: pages of the log, readable rows, and a job's timeline with its own
events only."""

from __future__ import annotations

import re

from governance.audit import record as audit
from governance.audit.actions import AuditAction
from governance.schema import Job
from governance.uow import unit_of_work
from tests.web.conftest import WebWorld

SEQS = re.compile(r'<td class="num">(\d+)</td>')


def test_audit_log_pages_by_sequence_number(web: WebWorld) -> None:
    with unit_of_work(web.sf) as db:
        for n in range(120):
            audit.record(
                db, action=AuditAction.DB_UPGRADED, actor="system:test", details={"n": n, "note": "x" * 80}
            )
    client = web.client("auditor")
    first = client.get("/audit", params={"action": "db.*"}).text
    seqs = [int(s) for s in SEQS.findall(first)]
    assert len(seqs) == 50 and seqs == sorted(seqs, reverse=True)
    older = re.search(r'<a rel="next" href="([^"]+)">Older', first)
    assert older and "action=db.%2A" in older.group(1) and "before=" in older.group(1)
    second = client.get(older.group(1).replace("&amp;", "&")).text
    seqs2 = [int(s) for s in SEQS.findall(second)]
    assert len(seqs2) == 50 and max(seqs2) == min(seqs) - 1 and "← Newest" in second
    third = client.get(
        re.search(r'<a rel="next" href="([^"]+)">Older', second).group(1).replace("&amp;", "&")
    ).text
    assert len(SEQS.findall(third)) == 20 and "Older →" not in third
    # Details fold away; nothing is set to break inside tokens.
    assert (
        "<details><summary>2 fields</summary>" in first
        and 'class="mono"' not in first.split('<table class="events">')[1]
    )


def test_job_timeline_shows_that_jobs_events_only(web: WebWorld) -> None:
    job_a = web.job_awaiting_review()
    job_b = web.job_awaiting_review()
    with unit_of_work(web.sf) as db:
        consent_a, batch_a = db.get(Job, job_a).consent_id, db.get(Job, job_a).batch_id
        # Another job's event on job A's consent and batch (as a consent check for job B would be).
        audit.record(
            db,
            action=AuditAction.CONSENT_VERIFIED,
            actor="system:test",
            resource_type="consent",
            resource_id=consent_a,
            job_id=job_b,
        )
        audit.record(
            db,
            action=AuditAction.ACCESS_READ,
            actor="system:test",
            resource_type="batch",
            resource_id=batch_a,
            job_id=job_b,
        )
    client = web.client("auditor")
    timeline_a = client.get(f"/audit/jobs/{job_a}").text
    assert "consent.granted" in timeline_a and "job.awaiting_review" in timeline_a
    assert "consent.verified" not in timeline_a and "access.read" not in timeline_a
    linked = set(re.findall(r'href="/audit/jobs/([0-9a-f-]+)"', timeline_a))
    assert linked == {job_a}
    timeline_b = client.get(f"/audit/jobs/{job_b}").text
    assert "consent.verified" in timeline_b
