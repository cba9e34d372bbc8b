"""Retention: what the sweep deleted once a job's data outlived its purpose is on record, one event a deletion.

The sweep itself (which objects are due, deleting them) is `flows.maintenance`; governance keeps the
record: `retention.output_deleted` for a job's quarantined render, `retention.input_deleted` for an
input asset, each naming the object, how many versions went and the retention period that sent them.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from governance.audit import record as audit
from governance.audit.actions import AuditAction


def record_output_deleted(
    session: Session,
    *,
    job_id: str,
    subject_id: str | None,
    actor: str,
    bucket: str,
    key: str,
    versions: int,
    retention_days: int,
) -> None:
    """Audit the deletion of a job's unpublished render (`retention.output_deleted`)."""
    audit.record(
        session,
        action=AuditAction.RETENTION_OUTPUT_DELETED,
        actor=actor,
        subject_id=subject_id,
        job_id=job_id,
        resource_type="job",
        resource_id=job_id,
        details={"bucket": bucket, "key": key, "versions": versions, "retention_days": retention_days},
    )


def record_input_deleted(
    session: Session,
    *,
    asset_id: str,
    subject_id: str | None,
    actor: str,
    bucket: str,
    key: str,
    versions: int,
    retention_days: int,
) -> None:
    """Audit the deletion of an input asset no job needs any more (`retention.input_deleted`)."""
    audit.record(
        session,
        action=AuditAction.RETENTION_INPUT_DELETED,
        actor=actor,
        subject_id=subject_id,
        job_id=None,
        resource_type="asset",
        resource_id=asset_id,
        details={"bucket": bucket, "key": key, "versions": versions, "retention_days": retention_days},
    )
