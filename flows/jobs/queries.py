"""Read-only questions the flows and the CLI ask of the database: which jobs are where."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select

from flows.runtime.root import Runtime
from governance.enums import JobState
from governance.schema import Job
from governance.uow import unit_of_work

# A batch run picks up every job that is not finished: new ones, and those a crashed run left half-way.
UNFINISHED = (
    JobState.submitted,
    JobState.rendering,
    JobState.rendered,
    JobState.approved,
    JobState.publishing,
)


def jobs_in_states(
    rt: Runtime,
    states: Iterable[JobState],
    *,
    batch_id: str | None = None,
    changed_before: datetime | None = None,
    limit: int | None = None,
) -> list[str]:
    """Ids of jobs in `states` (optionally of one batch, or unchanged since a moment), oldest first."""
    statement = select(Job.id).where(Job.state.in_(list(states))).order_by(Job.created_at, Job.id)
    if batch_id is not None:
        statement = statement.where(Job.batch_id == batch_id)
    if changed_before is not None:
        statement = statement.where(Job.state_changed_at < changed_before)
    if limit is not None:
        statement = statement.limit(limit)
    with unit_of_work(rt.sessions) as session:
        return list(session.scalars(statement))
