"""`takedown`: live publications that no consent covers any more are taken down, audited.

Run on demand right after a revocation (`-p subject_id=...`) and on a short schedule as a sweep, so a
revoked, expired or narrowed consent takes its videos down even when nobody remembered to ask. A
named job can also be taken down by hand with a reason (`-p job_id=... -p reason=...`).
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from sqlalchemy import select

from flows.jobdata import clear_workspace
from flows.retry import RETRIES, RETRY_DELAYS, only_transient
from flows.runtime import Runtime, get_runtime
from governance import consent
from governance.errors import ConsentError
from governance.schema import Job, Publication
from governance.types import utcnow
from governance.uow import unit_of_work

ACTOR = "system:takedown"


def live_publications(rt: Runtime, *, subject_id: str | None, job_id: str | None) -> list[tuple[str, str]]:
    """(publication id, job id) of publications not yet taken down (of one subject or one job, or all)."""
    statement = select(Publication.id, Job.id).join(Publication, Publication.job_id == Job.id).where(
        Publication.taken_down_at.is_(None)
    )
    if subject_id is not None:
        statement = statement.where(Job.subject_id == subject_id)
    if job_id is not None:
        statement = statement.where(Job.id == job_id)
    with unit_of_work(rt.sessions) as session:
        return [(row[0], row[1]) for row in session.execute(statement.order_by(Publication.published_at))]


def uncovered_reason(rt: Runtime, job_id: str) -> str | None:
    """Why no consent covers the job's use now, or None while one does."""
    with unit_of_work(rt.sessions) as session:
        job = session.get(Job, job_id)
        if job is None:
            return f"job {job_id} not found"
        try:
            consent.verify(session, subject_id=job.subject_id, purpose=job.purpose, channel=job.channel,
                           territory=job.territory, at=utcnow())
        except ConsentError as exc:
            return str(exc)
    return None


@task(name="take-down", retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=only_transient)
def take_down(publication_id: str, reason: str) -> str:
    """Stop serving one published video and record the takedown (the job moves to `taken_down`)."""
    from flows.publishing import takedown_publication

    rt = get_runtime()
    report = takedown_publication(rt.sessions, rt.store, publication_id=publication_id, reason=reason, actor=ACTOR)
    clear_workspace(rt.workspace_root, report.job_id)  # no local copy outlives the takedown
    return report.job_id


@flow(name="takedown")
def takedown(subject_id: str | None = None, job_id: str | None = None, reason: str | None = None) -> list[str]:
    """Take down live publications whose consent no longer covers them; returns the job ids taken down.

    With `job_id` and `reason`, that job's publication is taken down whatever its consent says.
    """
    log = get_run_logger()
    rt = get_runtime()
    done: list[str] = []
    for publication_id, candidate in live_publications(rt, subject_id=subject_id, job_id=job_id):
        why = reason if (job_id is not None and reason) else uncovered_reason(rt, candidate)
        if why is not None:
            done.append(take_down(publication_id, why))
    log.info("%d publication(s) taken down", len(done))
    return done
