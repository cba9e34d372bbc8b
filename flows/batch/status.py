"""What happened to each job of a batch, as plain rows for the CLI, the demo and the web console."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from flows.runtime.root import Runtime
from governance import batches, jobs
from governance.schema import Publication, ReviewDecision, Subject, User
from governance.uow import unit_of_work


@dataclass(frozen=True)
class JobRow:
    """One job's standing: where it is, how it scored, what was decided, where it was published."""

    job_id: str
    subject: str
    use: str
    state: str
    scores: dict[str, Any]
    outcome: str | None
    reasons: str | None
    reviewer: str | None
    published_key: str | None
    published_bucket: str | None
    last_error: str | None
    # How its publication stands (`flows.publish.queue.publish_status`): none, queued, publishing,
    # published or failed, and the error of a failed one.
    publication: str = "none"
    publication_error: str | None = None


@dataclass(frozen=True)
class BatchReport:
    """A batch and its jobs, in submission order."""

    batch_id: str
    name: str
    requested_by: str
    jobs: list[JobRow]

    def count(self, state: str) -> int:
        """How many jobs are in `state`."""
        return sum(1 for job in self.jobs if job.state == state)


def _with_publication(row: JobRow, status: Any) -> JobRow:
    from dataclasses import replace

    return replace(row, publication=status.state, publication_error=status.error)


def batch_report(rt: Runtime, batch_id: str) -> BatchReport:
    """Read a batch's jobs with their scores, review decision and publication."""
    from flows.publish.queue import publish_status

    with unit_of_work(rt.sessions) as session:
        batch = batches.get_batch(session, batch_id)
        requester = session.get(User, batch.requested_by)
        rows = []
        for job in batches.jobs_of_batch(session, batch_id):
            subject = session.get(Subject, job.subject_id)
            publication = session.scalars(select(Publication).where(Publication.job_id == job.id)).first()
            decision = session.scalars(select(ReviewDecision).where(ReviewDecision.job_id == job.id)).first()
            reviewer = session.get(User, decision.reviewer_id) if decision is not None else None
            rows.append(
                JobRow(
                    job_id=job.id,
                    subject=subject.reference if subject is not None else job.subject_id,
                    use=f"{job.purpose}/{job.channel}/{job.territory}",
                    state=job.state.value,
                    scores=dict(job.check_scores or {}),
                    outcome=job.outcome.value if job.outcome is not None else None,
                    reasons="; ".join(check.reasons)
                    if (check := jobs.latest_check(session, job.id))
                    else None,
                    reviewer=(
                        f"{reviewer.email}: {decision.verdict.value}"
                        if reviewer is not None and decision
                        else None
                    ),
                    published_key=publication.object_key if publication is not None else None,
                    published_bucket=publication.bucket if publication is not None else None,
                    last_error=job.last_error,
                )
            )
        name, requested_by = batch.name, requester.email if requester is not None else batch.requested_by
    # After the unit of work: each status reads in one of its own (on SQLite a nested one would wait for
    # this one's write lock).
    rows = [_with_publication(row, publish_status(rt, row.job_id)) for row in rows]
    return BatchReport(batch_id=batch_id, name=name, requested_by=requested_by, jobs=rows)
