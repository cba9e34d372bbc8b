"""What waits for a reviewer, and what a reviewer needs to see to decide (read-only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flows.jobs.data import StoredRef, fetch
from flows.runtime.root import Runtime
from governance import jobs
from governance.enums import JobState
from governance.schema import Batch, Subject, User
from governance.uow import unit_of_work


@dataclass(frozen=True)
class ReviewItem:
    """One job as a reviewer sees it: who, for what, how it scored, why it was flagged, since when."""

    job_id: str
    batch_id: str
    requested_by: str
    subject: str
    use: str
    state: str
    waiting_since: datetime
    scores: dict[str, Any]
    reasons: list[str]
    policy_version: str | None
    output: StoredRef | None
    model_sha256: str | None


def _item(session: Any, job_id: str) -> ReviewItem:
    job = jobs.get_job(session, job_id)
    subject = session.get(Subject, job.subject_id)
    batch = session.get(Batch, job.batch_id)
    requester = session.get(User, batch.requested_by) if batch is not None else None
    check = jobs.latest_check(session, job.id)
    output = (
        StoredRef(job.output_bucket, job.output_key, job.output_sha256)
        if job.output_bucket and job.output_key and job.output_sha256
        else None
    )
    return ReviewItem(
        job_id=job.id,
        batch_id=job.batch_id,
        requested_by=requester.email if requester else "?",
        subject=subject.reference if subject is not None else job.subject_id,
        use=f"{job.purpose}/{job.channel}/{job.territory}",
        state=job.state.value,
        waiting_since=job.state_changed_at,
        scores=dict(job.check_scores or {}),
        reasons=list(check.reasons) if check is not None else [],
        policy_version=job.policy_version,
        output=output,
        model_sha256=job.model_sha256,
    )


def pending_reviews(rt: Runtime) -> list[ReviewItem]:
    """Every job awaiting review, longest waiting first."""
    with unit_of_work(rt.sessions) as session:
        waiting = jobs.jobs_in_state(session, JobState.awaiting_review)
        items = [_item(session, job.id) for job in waiting]
    return sorted(items, key=lambda item: item.waiting_since)


def review_item(rt: Runtime, job_id: str) -> ReviewItem:
    """One job as a reviewer sees it (any state, so a decided job can be looked at too)."""
    with unit_of_work(rt.sessions) as session:
        return _item(session, job_id)


def download_render(rt: Runtime, item: ReviewItem, dest: Path) -> Path:
    """Fetch the job's quarantined render for viewing; its hash is checked against the job's record."""
    if item.output is None:
        raise ValueError(f"job {item.job_id} has no render to look at")
    return fetch(rt.store, item.output, dest)
