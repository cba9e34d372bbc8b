"""`takedown`: live publications that no consent covers any more are taken down, audited; retried until done.

Revoking or narrowing a consent (CLI, console or Python: `flows.takedown.steps`) takes its publications
down at once; when the storage was unreachable, they stay due (`governance.withdrawals.takedowns_due`)
and this flow, on a short schedule, takes them down once the storage answers again. It also catches
consents that simply expired. Run on demand with `-p subject_id=...`; a named job can also be taken
down by hand with a reason (`-p job_id=... -p reason=...`).
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from sqlalchemy import select

from flows.audit.checkpoints import checkpoint_after
from flows.jobs.data import clear_workspace
from flows.runtime.retry import RETRIES, RETRY_DELAYS, only_transient
from flows.runtime.root import get_runtime
from governance import withdrawals
from governance.schema import Publication
from governance.uow import unit_of_work

ACTOR = "system:takedown"


@task(name="take-down", retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=only_transient)
def take_down(publication_id: str, reason: str) -> str:
    """Stop serving one published video and record the takedown (the job moves to `taken_down`)."""
    from flows.takedown.steps import takedown_publication

    rt = get_runtime()
    report = takedown_publication(
        rt.sessions, rt.store, publication_id=publication_id, reason=reason, actor=ACTOR
    )
    clear_workspace(rt.workspace_root, report.job_id)  # no local copy outlives the takedown
    return report.job_id


def _todo(subject_id: str | None, job_id: str | None, reason: str | None) -> list[tuple[str, str]]:
    """(publication id, reason) of what to take down: the named job's, or every publication due."""
    rt = get_runtime()
    with unit_of_work(rt.sessions) as session:
        if job_id is not None and reason:
            found = session.scalars(
                select(Publication).where(Publication.job_id == job_id, Publication.taken_down_at.is_(None))
            ).first()
            return [(found.id, reason)] if found is not None else []
        due = withdrawals.takedowns_due(session, subject_id=subject_id)
        return [(item.publication_id, item.reason) for item in due if job_id is None or item.job_id == job_id]


@flow(name="takedown")
def takedown(
    subject_id: str | None = None, job_id: str | None = None, reason: str | None = None
) -> list[str]:
    """Take down live publications whose consent no longer covers them; returns the job ids taken down.

    With `job_id` and `reason`, that job's publication is taken down whatever its consent says. A
    takedown the storage still refuses after the task's retries stays due for the next run; the run
    then fails, so the failure is visible in Prefect.
    """
    log = get_run_logger()
    done: list[str] = []
    failed: list[str] = []
    for publication_id, why in _todo(subject_id, job_id, reason):
        state = take_down(publication_id, why, return_state=True)
        if state.is_completed():
            done.append(state.result())
        else:
            failed.append(publication_id)
    log.info("%d publication(s) taken down, %d still due", len(done), len(failed))
    if done:
        rt = get_runtime()
        checkpoint_after(rt.settings, rt.sessions, "takedown")
    if failed:
        raise RuntimeError(f"takedown of {len(failed)} publication(s) failed, still due: {', '.join(failed)}")
    return done
