"""`review_timeout_sweep`: jobs that waited for a reviewer longer than the window are rejected, audited.

Scheduled (`prefect.yaml`); the per-job rule is `flows.review.steps.expire_review`.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow, get_run_logger

from flows.review.steps import expire_review
from flows.runtime.root import get_runtime
from governance import jobs
from governance.enums import JobState
from governance.types import utcnow
from governance.uow import unit_of_work


@flow(name="review-timeout-sweep")
def review_timeout_sweep(timeout_hours: float | None = None) -> list[str]:
    """Reject every job that has awaited review longer than the window; returns their ids."""
    log = get_run_logger()
    rt = get_runtime()
    hours = timeout_hours if timeout_hours is not None else rt.settings.review_timeout_hours
    window = timedelta(hours=hours)
    with unit_of_work(rt.sessions) as session:
        waiting = jobs.jobs_in_state(session, JobState.awaiting_review, changed_before=utcnow() - window)
        overdue = [job.id for job in waiting]
    expired = [job_id for job_id in overdue if expire_review(rt, job_id) == JobState.rejected]
    log.info("%d overdue review(s) rejected", len(expired))
    return expired
