"""Claiming, refusing and failing a job: the mechanics render and publish share.

A claim moves a job into a working state for one flow run (`submitted -> rendering`,
`approved -> publishing`) or takes over a job whose holder is gone (its heartbeat stopped, or the long
reclaim clock ran out). A refusal is a governance outcome, a failure a technical one; both end the job
and remove its local workspace. Every state change goes through `governance.jobs`, which audits it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flows.jobs.data import FINAL_STATES, clear_workspace
from flows.runtime.root import Runtime
from governance import jobs
from governance.enums import JobState
from governance.errors import InvalidTransition
from governance.types import utcnow
from governance.uow import unit_of_work

logger = logging.getLogger(__name__)

HolderCheck = Callable[[str], bool]

HELD_ELSEWHERE = "held_elsewhere"  # what a claim task returns for a job another live run is working on


class HeldElsewhere(InvalidTransition):
    """Another, still running flow run holds the job; this run leaves it alone (never retried)."""


def holder_gone(
    rt: Runtime, holder: str | None, *, held_since: datetime, holder_alive: HolderCheck | None
) -> str | None:
    """Why a held job's holder counts as gone, or None while it is alive and keeps the job.

    The one rule for a claim's take-over and the dead-run sweep: a holder that has been silent longer
    than `LIKENESS_RECLAIM_AFTER_MINUTES` is gone (the long clock, for a holder that never beat);
    otherwise `holder_alive` decides (its heartbeat and Prefect state). Without a check (`None`), a
    recorded holder is not asked and counts as gone.
    """
    if not holder:
        return "no holder run recorded"
    since = held_since.replace(tzinfo=UTC) if held_since.tzinfo is None else held_since  # SQLite: naive UTC
    if utcnow() - since > timedelta(minutes=rt.settings.reclaim_after_minutes):
        return f"holder run {holder} silent for more than {rt.settings.reclaim_after_minutes:.0f} min"
    if holder_alive is not None and holder_alive(holder):
        return None
    return f"holder run {holder} is dead (crashed, ended, or its heartbeat stopped)"


def claim(
    rt: Runtime,
    job_id: str,
    *,
    run_id: str,
    start: JobState,
    to: JobState,
    holder_alive: HolderCheck | None,
    actor: str,
) -> JobState:
    """Claim `start -> to` or re-claim a job a dead run left in `to`; return the state after it.

    A re-claim also removes what the dead run left on this machine (fetched inputs, a partial render,
    temporary files): the new run starts from storage and the database, not from half-written files.
    """
    reclaimed = False
    with unit_of_work(rt.sessions) as session:
        job = jobs.get_job(session, job_id)
        if job.state == start:
            jobs.claim(session, job, to=to, flow_run_id=run_id, actor=actor)
        elif job.state == to and job.flow_run_id != run_id:
            holder = job.flow_run_id
            if holder_gone(rt, holder, held_since=job.updated_at, holder_alive=holder_alive) is None:
                raise HeldElsewhere(f"job {job_id} is being worked on by live flow run {holder}")
            jobs.reclaim(session, job_id=job_id, flow_run_id=run_id, actor=actor, expected_flow_run_id=holder)
            reclaimed = True
        state = JobState(job.state)
    if reclaimed or state in FINAL_STATES:
        clear_workspace(rt.workspace_root, job_id)
    return state


def refuse(
    rt: Runtime,
    job_id: str,
    *,
    reason: str,
    error: str,
    actor: str,
    details: dict[str, object] | None = None,
) -> JobState:
    """Record a governance refusal: the job moves to `refused`, the reason (and `details`: what was
    measured) goes to the job and the audit log, and the job's workspace is removed."""
    with unit_of_work(rt.sessions) as session:
        job = jobs.get_job(session, job_id)
        jobs.refuse(session, job, actor=actor, reason=reason, details={"error": error, **(details or {})})
    clear_workspace(rt.workspace_root, job_id)
    logger.info("job %s refused: %s", job_id, reason)
    return JobState.refused


def describe(error: BaseException) -> tuple[str, str]:
    """An error's class name and the first line of its message (what jobs and audit events keep)."""
    message = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return type(error).__name__, message


def fail(rt: Runtime, job_id: str, *, error_type: str, message: str, actor: str) -> JobState:
    """Record a technical failure that retrying will not fix; the job moves to `failed`, audited.

    A job already in a final state keeps it (a failure after publication does not unpublish). Either
    way the job's workspace is removed.
    """
    with unit_of_work(rt.sessions) as session:
        job = jobs.get_job(session, job_id)
        state = JobState(job.state)
        if state in jobs.TERMINAL_STATES or state == JobState.published:
            clear_workspace(rt.workspace_root, job_id)
            return state
        jobs.fail(session, job, actor=actor, error=f"{error_type}: {message}", details={"error": error_type})
    clear_workspace(rt.workspace_root, job_id)
    logger.warning("job %s failed: %s: %s", job_id, error_type, message)
    return JobState.failed
