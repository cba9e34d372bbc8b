"""Batches: a requester submits a set of jobs at once; each job names who, from what, and for which use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.assets import get_asset, register_asset
from governance.audit import record as audit
from governance.audit.actions import AuditAction
from governance.enums import AssetKind, Role
from governance.errors import NotFound, ValidationFailed
from governance.schema import Batch, Job
from governance.subjects import get_subject
from governance.types import new_id
from governance.users import require_role
from governance.vocabulary import check_term

__all__ = ["NewJob", "create_batch", "get_batch", "jobs_of_batch", "register_asset"]
REQUESTING_ROLES = (Role.operator, Role.admin)


class NewJob(BaseModel):
    """One job of a batch, as submitted: ids and the requested use, before the job has a row.

    Three shapes of a job, three names: `flows.batch.batchfile.JobRequest` is a batch file's row (paths,
    a subject's reference), `NewJob` is what `create_batch` writes, `flows.jobs.data.JobSpec` is a stored
    job read back as plain data for the render and publish steps.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject_id: str = Field(min_length=1, max_length=36)
    portrait_asset_id: str = Field(min_length=1, max_length=36)
    driving_asset_id: str = Field(min_length=1, max_length=36)
    purpose: str
    channel: str
    territory: str
    options: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None  # the noise seed asked for (reproducible renders); None: the render draws one


def _check_job(session: Session, index: int, spec: NewJob) -> None:
    where = f"job {index + 1}"
    try:
        get_subject(session, spec.subject_id)
        portrait = get_asset(session, spec.portrait_asset_id)
        driving = get_asset(session, spec.driving_asset_id)
        check_term("purpose", spec.purpose)
        check_term("channel", spec.channel)
        check_term("territory", spec.territory)
    except (NotFound, ValidationFailed) as exc:
        raise type(exc)(f"{where}: {exc}") from None
    if portrait.kind != AssetKind.portrait:
        raise ValidationFailed(f"{where}: asset {portrait.id} is a {portrait.kind.value}, not a portrait")
    if driving.kind != AssetKind.driving_video:
        raise ValidationFailed(f"{where}: asset {driving.id} is a {driving.kind.value}, not a driving_video")
    if portrait.subject_id is not None and portrait.subject_id != spec.subject_id:
        raise ValidationFailed(f"{where}: portrait {portrait.id} belongs to another subject")
    try:
        audit.canonical_json(spec.options)
    except (TypeError, ValueError):
        raise ValidationFailed(f"{where}: options are not plain JSON") from None


def create_batch(
    session: Session,
    *,
    name: str,
    requested_by: str,
    jobs: Sequence[NewJob],
    spec: dict[str, Any] | None = None,
) -> Batch:
    """Create a batch and its jobs in `submitted` (operator or admin; audited `batch.created`, `job.submitted`).

    Every job is checked before anything is written: unknown subjects or assets, wrong asset kinds,
    unknown purposes/channels/territories refuse the whole batch. Consent is verified later, by the
    render flow, at the time of rendering.
    """
    user = require_role(session, user_id=requested_by, roles=REQUESTING_ROLES, action="batch.create")
    if not name.strip():
        raise ValidationFailed("batch name is empty")
    if not jobs:
        raise ValidationFailed(f"batch {name!r} has no jobs")
    for index, job_spec in enumerate(jobs):
        _check_job(session, index, job_spec)
    batch = Batch(id=new_id(), name=name.strip(), requested_by=user.id, spec=spec or {})
    session.add(batch)
    session.flush()
    audit.record(
        session,
        action=AuditAction.BATCH_CREATED,
        actor=user.email,
        resource_type="batch",
        resource_id=batch.id,
        details={"name": batch.name, "jobs": len(jobs)},
    )
    for job_spec in jobs:
        job = Job(id=new_id(), batch_id=batch.id, **job_spec.model_dump())
        session.add(job)
        session.flush()
        audit.record(
            session,
            action=AuditAction.JOB_SUBMITTED,
            actor=user.email,
            subject_id=job.subject_id,
            job_id=job.id,
            resource_type="job",
            resource_id=job.id,
            details={
                "batch_id": batch.id,
                "purpose": job.purpose,
                "channel": job.channel,
                "territory": job.territory,
                "portrait_asset_id": job.portrait_asset_id,
                "driving_asset_id": job.driving_asset_id,
            },
        )
    return batch


def get_batch(session: Session, batch_id: str) -> Batch:
    """The batch with this id, or NotFound."""
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"batch {batch_id} not found")
    return batch


def jobs_of_batch(session: Session, batch_id: str) -> list[Job]:
    """A batch's jobs, in submission order."""
    get_batch(session, batch_id)
    return list(session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.created_at, Job.id)))
