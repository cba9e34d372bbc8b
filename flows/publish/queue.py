"""Publishing, queued: a decision returns at once, and publishing runs as its own `publish-job` run.

An approval is a decision (recorded through governance by `flows.review.steps.apply_decision`); delivering it
is work that needs the object store's secret and the signing key, can fail on a storage outage and can
take minutes. So it is queued, never run in the approver's request:

* **deployment** (`LIKENESS_PUBLISH_DEPLOYMENT`, e.g. `publish-job/publish-job--prod`): a run of that
  deployment is created through the Prefect API (`run_deployment(..., timeout=0)`) and a `cpu` worker
  takes it. The reviewer's machine needs the database and the Prefect API only: no storage secret, no
  signing key.
* **local** (no deployment configured): `publish_job` runs on a background thread of this process
  (the console keeps running; the CLI waits for it before it exits).

Every step is in the audit log: `publish.queued` when it is queued (mode, run id, by whom), and
`publish.attempt_failed` with the error when a run gave up (a transient error that outlived its
retries leaves the job `approved`/`publishing`; a permanent one marks it `failed`). The run releases
its claim on the job in the same transaction, so a retry queued as soon as the pages show the failure
claims the job at once, even while the failed run is still finishing. `publish_status`
turns the job's state and those events into what the review and batch pages show — `queued`,
`publishing`, `published`, `failed` (with the error) — and `retry_publish` queues a failed publication
again; the `publish-approved` sweep retries them too.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import select

from flows.runtime.root import Runtime, use_runtime
from governance import publications
from governance.audit.actions import AuditAction
from governance.enums import JobState
from governance.errors import InvalidTransition
from governance.schema import AuditEvent, Job
from governance.uow import unit_of_work

logger = logging.getLogger(__name__)

ACTOR = "system:publish-queue"
QUEUED, FAILED_ATTEMPT = AuditAction.PUBLISH_QUEUED, AuditAction.PUBLISH_ATTEMPT_FAILED
PublishMode = Literal["deployment", "local"]
PublishState = Literal["none", "queued", "publishing", "published", "failed"]
_PUBLISH_EVENTS = (QUEUED, FAILED_ATTEMPT, AuditAction.JOB_PUBLISHING, AuditAction.JOB_PUBLISHED)


@dataclass(frozen=True)
class PublishTicket:
    """A queued publication: how it runs and, for a deployment run, its Prefect flow run id."""

    job_id: str
    mode: PublishMode
    flow_run_id: str | None
    _thread: threading.Thread | None = field(default=None, repr=False, compare=False)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a local publication to end (a deployment run is a worker's: returns at once).
        Returns whether it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()


@dataclass(frozen=True)
class PublishStatus:
    """What a page shows about a job's publication."""

    state: PublishState
    error: str | None
    at: datetime | None

    @property
    def retryable(self) -> bool:
        return self.state == "failed"


def queue_publish(rt: Runtime, job_id: str, *, requested_by: str) -> PublishTicket:
    """Queue `publish-job` for an approved job and return at once (see the module docstring)."""
    deployment = rt.settings.publish_deployment
    if deployment:
        from prefect.client.schemas.objects import FlowRun
        from prefect.deployments import run_deployment

        from flows.runtime.orchestrator import require_api

        require_api(rt.settings)
        # Typed `FlowRun | Coroutine` (Prefect's async_dispatch); called from sync code it is the FlowRun.
        run = cast(
            FlowRun,
            run_deployment(deployment, parameters={"job_id": job_id}, timeout=0, tags=[f"job:{job_id}"]),
        )
        ticket = PublishTicket(job_id, "deployment", str(run.id))
    else:
        from flows.runtime.orchestrator import require_api

        require_api(rt.settings)
        thread = threading.Thread(target=_publish_here, args=(rt, job_id), name=f"publish-{job_id[:8]}")
        ticket = PublishTicket(job_id, "local", None, thread)
    with unit_of_work(rt.sessions) as session:
        publications.record_publish_queued(
            session, job_id=job_id, actor=requested_by, mode=ticket.mode, flow_run_id=ticket.flow_run_id
        )
    if ticket._thread is not None:
        ticket._thread.start()
    logger.info("publication of job %s queued (%s)", job_id, ticket.mode)
    return ticket


def _publish_here(rt: Runtime, job_id: str) -> None:
    """The local runner: `publish_job` on this thread; its failure is already on the job and in the audit."""
    from flows.publish.flow import publish_job

    with use_runtime(rt):
        state = publish_job(job_id, return_state=True)
    if not state.is_completed():
        logger.warning("publication of job %s failed: %s", job_id, state.message)


def record_failed_attempt(
    rt: Runtime, job_id: str, error_type: str, message: str, *, run_id: str | None
) -> None:
    """Audit that publish run `run_id` gave up (`publish.attempt_failed`), so the pages can show why, and
    release its claim on the job in the same transaction (`governance.jobs.release_claim`): a retry
    allowed by this event never finds the job still held by the run that failed."""
    with unit_of_work(rt.sessions) as session:
        publications.record_publish_failed(
            session, job_id=job_id, actor=ACTOR, error_type=error_type, error=message, run_id=run_id
        )


def publish_status(rt: Runtime, job_id: str) -> PublishStatus:
    """`queued`, `publishing`, `published` or `failed` (with the error); `none` before any approval."""
    with unit_of_work(rt.sessions) as session:
        job = session.get(Job, job_id)
        if job is None:
            return PublishStatus("none", None, None)
        state = JobState(job.state)
        if state in (JobState.published, JobState.taken_down):
            return PublishStatus("published", None, job.state_changed_at)
        last = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.job_id == job_id, AuditEvent.action.in_(_PUBLISH_EVENTS))
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        ).first()
        if state == JobState.failed:
            return (
                PublishStatus("failed", job.last_error, job.state_changed_at)
                if last is not None
                else PublishStatus("none", None, None)
            )
        if state not in (JobState.approved, JobState.publishing):
            return PublishStatus("none", None, None)
        if last is None:
            return PublishStatus("queued" if state == JobState.approved else "publishing", None, None)
        if last.action == FAILED_ATTEMPT:
            details = last.details or {}
            return PublishStatus(
                "failed", f"{details.get('error_type')}: {details.get('error')}", last.occurred_at
            )
        return PublishStatus("queued" if last.action == QUEUED else "publishing", None, last.occurred_at)


def retry_publish(rt: Runtime, job_id: str, *, requested_by: str) -> PublishTicket:
    """Queue a failed publication again (the claim takes the job over from the run that gave up).

    Raises:
        governance.errors.InvalidTransition: the job's publication has not failed (nothing to retry).
    """
    status = publish_status(rt, job_id)
    if status.state != "failed":
        raise InvalidTransition(f"job {job_id}: publication is {status.state}, not failed: nothing to retry")
    with unit_of_work(rt.sessions) as session:
        job = session.get(Job, job_id)
        if job is None or JobState(job.state) not in (JobState.approved, JobState.publishing):
            raise InvalidTransition(
                f"job {job_id} is {job.state if job else 'missing'}: "
                "only an approved job whose publication failed can be retried"
            )
    return queue_publish(rt, job_id, requested_by=requested_by)
