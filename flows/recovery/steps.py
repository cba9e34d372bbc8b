"""Finding jobs whose holding run is dead, and releasing them through governance (no Prefect here).

A job in `rendering` or `publishing` names the flow run that holds it (`jobs.flow_run_id`). When that
run's host dies, nothing of ours runs: the job would wait for the next claim (the nightly batch, a
re-run, the `publish-approved` sweep) to notice. `release_dead_holders` is the standing check: for
every held job it asks `holder_alive` (in the flows, `flows.runtime.heartbeat.holder_alive`, which also
marks a silent RUNNING run CRASHED in Prefect) and releases the job of a dead holder with
`governance.jobs.release` (audited `job.released`), so whichever run claims it next takes it over at
once (audited `job.reclaimed`). The six-hour `LIKENESS_RECLAIM_AFTER_MINUTES` clock still applies to a
holder that never beat (a run started by older code): once it has run out, that holder counts as dead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from flows.jobs.claims import HolderCheck, holder_gone
from flows.runtime.root import Runtime
from governance import jobs
from governance.enums import JobState
from governance.errors import InvalidTransition
from governance.schema import Job
from governance.uow import unit_of_work

logger = logging.getLogger(__name__)

ACTOR = "system:dead-run-sweep"
HELD_STATES = (JobState.rendering, JobState.publishing)


@dataclass(frozen=True)
class Released:
    """A job freed from a dead run: its state (`rendering`/`publishing`) and the run that held it."""

    job_id: str
    state: JobState
    dead_run_id: str


def held_jobs(rt: Runtime, *, limit: int) -> list[tuple[str, str, datetime]]:
    """(job id, holder run id, held since) of jobs in rendering/publishing that have a holder."""
    statement = (
        select(Job.id, Job.flow_run_id, Job.updated_at)
        .where(Job.state.in_(HELD_STATES), Job.flow_run_id.is_not(None))
        .order_by(Job.updated_at, Job.id)
        .limit(limit)
    )
    with unit_of_work(rt.sessions) as session:
        return [(row[0], row[1], row[2]) for row in session.execute(statement)]


def release_dead_holders(
    rt: Runtime, *, holder_alive: HolderCheck, actor: str = ACTOR, limit: int = 500
) -> list[Released]:
    """Release every held job whose holder is dead; returns what was released, oldest first.

    A holder that is alive keeps its job. A job another run took over between the check and the
    release (`InvalidTransition` from governance) is left to that run: the release is conditional
    on the dead run still holding it.
    """
    released: list[Released] = []
    for job_id, holder, held_since in held_jobs(rt, limit=limit):
        reason = holder_gone(rt, holder, held_since=held_since, holder_alive=holder_alive)
        if reason is None:
            continue
        try:
            with unit_of_work(rt.sessions) as session:
                job = jobs.release(
                    session, job_id=job_id, expected_flow_run_id=holder, actor=actor, reason=reason
                )
                state = JobState(job.state)
        except InvalidTransition as exc:
            logger.info("job %s not released: %s", job_id, exc)
            continue
        logger.warning("job %s (%s) released: %s", job_id, state.value, reason)
        released.append(Released(job_id, state, holder))
    return released
