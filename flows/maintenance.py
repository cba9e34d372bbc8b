"""`retention_sweep`: inputs and unpublished renders are kept for N days after a job ends, then deleted.

A job's inputs (portrait, driving video) and its quarantined render are personal data with no use once
the job is over: they go `LIKENESS_RETENTION_DAYS` after the job's last state change. An input shared
with a job that is still running (or ended recently) stays. Every deletion is audited; deleting again
finds nothing and writes nothing, so the sweep can run as often as one likes. Published videos are not
touched: they leave through a takedown.

Local copies are not kept for N days at all: a job's workspace on this machine (`var/work/<job id>`,
`var/work/publish-<job id>`) is removed when the job ends, and the sweep removes any that were left
(a job that ended on another machine, a run killed before it could clean up, a folder of no known job).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Protocol

from prefect import flow, get_run_logger
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from flows.jobs.data import FINAL_STATES, clear_workspace, workspace_job_id
from flows.runtime.retry import RETRIES, RETRY_DELAYS
from flows.runtime.root import Runtime, get_runtime
from governance import retention
from governance.enums import AssetKind, JobState
from governance.schema import Asset, Job
from governance.types import utcnow
from governance.uow import unit_of_work

ACTOR = "system:retention"
ENDED = (JobState.published, JobState.taken_down, JobState.rejected, JobState.refused, JobState.failed)


@dataclass
class SweepReport:
    """What a sweep deleted (object keys), by kind."""

    outputs: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)


def expired_outputs(rt: Runtime, *, days: int) -> list[tuple[str, str, str]]:
    """(job id, subject id, key) of quarantined renders of jobs that ended more than `days` ago."""
    cutoff = utcnow() - timedelta(days=days)
    statement = select(Job.id, Job.subject_id, Job.output_key).where(
        Job.state.in_(ENDED), Job.state_changed_at < cutoff, Job.output_key.is_not(None)
    )
    with unit_of_work(rt.sessions) as session:
        return [(row[0], row[1], row[2]) for row in session.execute(statement)]


def expired_inputs(rt: Runtime, *, days: int) -> list[tuple[str, str | None, str]]:
    """(asset id, subject id, key) of inputs no job still needs: every job using them ended `days` ago."""
    cutoff = utcnow() - timedelta(days=days)
    still_needed = select(Job.id).where(
        or_(Job.portrait_asset_id == Asset.id, Job.driving_asset_id == Asset.id),
        or_(Job.state.not_in(ENDED), Job.state_changed_at >= cutoff),
    )
    statement = select(Asset.id, Asset.subject_id, Asset.object_key).where(
        Asset.kind.in_([AssetKind.portrait, AssetKind.driving_video]),
        Asset.created_at < cutoff,
        ~still_needed.exists(),
    )
    with unit_of_work(rt.sessions) as session:
        return [(row[0], row[1], row[2]) for row in session.execute(statement)]


class DeletionRecorder(Protocol):
    """A `governance.retention.record_*_deleted`, bound to what was deleted but where and how much."""

    def __call__(self, session: Session, *, bucket: str, versions: int) -> object: ...


def delete_object(rt: Runtime, *, bucket: str, key: str, record: DeletionRecorder) -> bool:
    """Delete every version of one object; audit it (`record`) when something was there. Returns whether it was."""
    removed = rt.store.delete(bucket, key)
    if not removed:
        return False
    with unit_of_work(rt.sessions) as session:
        record(session, bucket=rt.store.bucket_name(bucket), versions=removed)
    return True


def clear_local_workspaces(rt: Runtime) -> list[str]:
    """Remove this machine's workspaces of jobs that ended (or wait for review, or are unknown); returns
    the job ids whose folders were removed. Jobs still being worked on keep theirs."""
    root = rt.workspace_root
    folders = [path for path in root.iterdir() if path.is_dir()]
    ids = sorted({workspace_job_id(path) for path in folders})
    if not ids:
        return []
    resting = FINAL_STATES | {JobState.awaiting_review}
    with unit_of_work(rt.sessions) as session:
        states = {
            row[0]: JobState(row[1])
            for row in session.execute(select(Job.id, Job.state).where(Job.id.in_(ids)))
        }
    removed = [
        job_id
        for job_id in ids
        if (job_id not in states or states[job_id] in resting) and clear_workspace(root, job_id)
    ]
    return removed


# The whole sweep is idempotent, so a flow-level retry (storage briefly down) simply runs it again.
@flow(name="retention-sweep", retries=RETRIES, retry_delay_seconds=RETRY_DELAYS[0])
def retention_sweep(days: int | None = None) -> dict[str, list[str]]:
    """Delete inputs and unpublished renders older than the retention period; returns the keys deleted."""
    log = get_run_logger()
    rt = get_runtime()
    keep = days if days is not None else rt.settings.retention_days
    report = SweepReport()
    for job_id, subject_id, key in expired_outputs(rt, days=keep):
        if delete_object(
            rt,
            bucket="quarantine",
            key=key,
            record=partial(
                retention.record_output_deleted,
                job_id=job_id,
                subject_id=subject_id,
                actor=ACTOR,
                key=key,
                retention_days=keep,
            ),
        ):
            report.outputs.append(key)
    for asset_id, owner, key in expired_inputs(rt, days=keep):
        if delete_object(
            rt,
            bucket="inputs",
            key=key,
            record=partial(
                retention.record_input_deleted,
                asset_id=asset_id,
                subject_id=owner,
                actor=ACTOR,
                key=key,
                retention_days=keep,
            ),
        ):
            report.inputs.append(key)
    workspaces = clear_local_workspaces(rt)
    log.info(
        "retention sweep (%d days): %d render(s), %d input(s) deleted, %d local workspace(s) removed",
        keep,
        len(report.outputs),
        len(report.inputs),
        len(workspaces),
    )
    return {"outputs": report.outputs, "inputs": report.inputs}
