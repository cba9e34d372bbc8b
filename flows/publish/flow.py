"""`publish_job` and `publish_approved`: deliver approved jobs, once, after checking consent again.

`publish_job` runs right after an auto-approval (as a subflow of the render) or, queued by
`flows.publish.queue.queue_publish`, after a reviewer's approval (`flows.review.steps.apply_decision`). A run
that gives up audits `publish.attempt_failed` with the error, which the review and batch pages show. `publish_approved` is the scheduled safety net: it
publishes every job that is approved but not yet published (a decision taken while no worker ran, or
a publish that crashed), so a re-run is the whole recovery procedure.
"""

from __future__ import annotations

import logging

from prefect import flow, task

from flows.audit.checkpoints import checkpoint_after
from flows.jobs import tasks
from flows.jobs.claims import HELD_ELSEWHERE, describe
from flows.jobs.tasks import RETRYING
from flows.publish import steps as publish_steps
from flows.publish.steps import ACTOR
from flows.runtime.heartbeat import beating, current_run_id
from flows.runtime.retry import is_transient
from flows.runtime.root import get_runtime
from governance import jobs
from governance.enums import JobState
from governance.errors import InvalidTransition
from governance.uow import unit_of_work


@task(name="claim-publish", **RETRYING)
def claim_publish(job_id: str) -> str:
    """Claim an approved job for publishing; returns its state after the claim, or `held_elsewhere`."""
    return tasks.claim_for_this_run(publish_steps.claim_publish, job_id)


@task(name="publish", **RETRYING)
def publish(job_id: str) -> str:
    """Mark and publish once; returns the job's state (`published`, or `refused` at the last moment)."""
    return publish_steps.publish(get_runtime(), job_id).value


@flow(name="publish-job")
def publish_job(job_id: str) -> str:
    """Claim, re-verify consent, mark and publish one approved job; returns the job's final state."""
    with beating(current_run_id(), every=get_runtime().settings.run_heartbeat_seconds):
        return _publish(job_id)


def _publish(job_id: str) -> str:
    try:
        claimed = claim_publish(job_id)
        if claimed == HELD_ELSEWHERE:
            return claimed
        state = JobState(claimed)
        if state != JobState.publishing:
            return state.value
        state = JobState(tasks.verify_consent(job_id, actor=ACTOR))
        if state != JobState.publishing:
            return state.value
        state = JobState(publish(job_id))
        checkpoint_after(get_runtime().settings, get_runtime().sessions, "publication")
    except Exception as exc:  # noqa: BLE001 - recorded on the job, then re-raised for Prefect
        if isinstance(exc, InvalidTransition):  # another run moved the job first: not this run's failure
            raise
        error_type, message = describe(exc)
        if not is_transient(exc):
            tasks.mark_failed(job_id, error_type, message)
        _note_failed_attempt(job_id, error_type, message, run_id=current_run_id())
        raise
    return state.value


def _note_failed_attempt(job_id: str, error_type: str, message: str, *, run_id: str | None) -> None:
    """Audit why this publish run gave up and release its claim on the job (a retry may claim it at once);
    never hides the run's own error if the database is down too."""
    from flows.publish.queue import record_failed_attempt

    try:
        record_failed_attempt(get_runtime(), job_id, error_type, message, run_id=run_id)
    except Exception:  # noqa: BLE001 - the original error is what the run reports
        logging.getLogger(__name__).warning(
            "could not audit the failed publication of job %s", job_id, exc_info=True
        )


@flow(name="publish-approved")
def publish_approved(limit: int = 100) -> dict[str, str]:
    """Publish every approved (or half-published) job, oldest first; returns job id → final state."""
    with unit_of_work(get_runtime().sessions) as session:
        due = [
            job.id for job in jobs.jobs_in_state(session, JobState.approved, JobState.publishing, limit=limit)
        ]
    results: dict[str, str] = {}
    for job_id in due:
        state = publish_job(job_id, return_state=True)
        results[job_id] = state.result() if state.is_completed() else f"error: {state.message}"
    return results
