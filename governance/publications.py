"""Publications: what was released, under which watermark, and its takedown. Services flush; callers commit.

A publication row ties a published object (bucket, key, version, sha256) to its job and to the 32-bit
watermark payload embedded in it, so a copy found anywhere can be traced back through the job to its
consent, model and reviewer. Takedowns are recorded here, never deleted: who, when, why.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance import jobs
from governance.audit import record as audit
from governance.audit.actions import AuditAction
from governance.enums import JobState, Role
from governance.errors import InvalidTransition, NotFound, ValidationFailed
from governance.schema import Asset, Consent, Job, Publication, ReviewDecision, User
from governance.types import new_id, utcnow
from governance.users import require_role

TAKEDOWN_ROLES = (Role.compliance, Role.admin)
PAYLOAD_MAX = 2**32


class StoredCopy(Protocol):
    """A stored object as the object store reports it (`pipeline.storage.objects.StoredObject` is one);
    governance does not import the store, so it names only the fields a publication row keeps."""

    @property
    def bucket(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def version_id(self) -> str | None: ...
    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int | None: ...


@dataclass(frozen=True)
class PublicationRecord:
    """Plain data about one publication and what stands behind it (no ORM object leaves a session)."""

    publication_id: str
    job_id: str
    subject_id: str
    bucket: str
    object_key: str
    version_id: str | None
    sha256: str
    watermark_payload: int
    published_at: datetime
    published_by: str
    consent_id: str | None
    consent_version: int | None
    consent_revoked: bool
    model_sha256: str | None
    reviewer: str | None
    review_verdict: str | None
    taken_down_at: datetime | None
    taken_down_by: str | None
    takedown_reason: str | None

    @property
    def active(self) -> bool:
        return self.taken_down_at is None


def get_publication(session: Session, publication_id: str) -> Publication:
    """The publication with this id, or NotFound."""
    publication = session.get(Publication, publication_id)
    if publication is None:
        raise NotFound(f"publication {publication_id} not found")
    return publication


def find_by_job(session: Session, job_id: str) -> Publication | None:
    """The publication of a job (a job is published at most once)."""
    return session.scalars(select(Publication).where(Publication.job_id == job_id)).first()


def find_by_watermark(session: Session, payload: int) -> Publication | None:
    """The publication whose invisible watermark carries `payload`, if any."""
    return session.scalars(select(Publication).where(Publication.watermark_payload == int(payload))).first()


def find_by_sha256(session: Session, sha256: str) -> Publication | None:
    """The publication whose published bytes hash to `sha256`, if any."""
    return session.scalars(select(Publication).where(Publication.sha256 == sha256.lower())).first()


def list_publications(session: Session, *, active_only: bool = False) -> list[Publication]:
    """Publications, newest first (optionally only those not taken down)."""
    statement = select(Publication)
    if active_only:
        statement = statement.where(Publication.taken_down_at.is_(None))
    return list(session.scalars(statement.order_by(Publication.published_at.desc(), Publication.id)))


def publications_for_consent(
    session: Session, consent_id: str, *, active_only: bool = True
) -> list[Publication]:
    """Publications of jobs made under any version of this consent (its whole lineage)."""
    consent = session.get(Consent, consent_id)
    if consent is None:
        raise NotFound(f"consent {consent_id} not found")
    lineage = select(Consent.id).where(Consent.lineage_id == consent.lineage_id)
    statement = select(Publication).join(Job, Job.id == Publication.job_id).where(Job.consent_id.in_(lineage))
    if active_only:
        statement = statement.where(Publication.taken_down_at.is_(None))
    return list(session.scalars(statement.order_by(Publication.published_at, Publication.id)))


def allocate_payload(session: Session, job_id: str) -> int:
    """A 32-bit watermark payload for the job: derived from its id, so a retry gets the same one.

    On the rare collision with another publication, the next candidate of the same derivation is
    taken (`sha256(job_id:n)`), which stays deterministic for this job.
    """
    for attempt in range(64):
        digest = hashlib.sha256(f"{job_id}:{attempt}".encode()).digest()
        payload = int.from_bytes(digest[:4], "big")
        holder = find_by_watermark(session, payload)
        if holder is None or holder.job_id == job_id:
            return payload
    raise ValidationFailed(f"job {job_id}: no free watermark payload after 64 candidates")


def record_publication(
    session: Session,
    *,
    job_id: str,
    stored: StoredCopy,
    watermark_payload: int,
    published_by: str,
    c2pa_manifest_label: str | None = None,
    c2pa_manifest: dict[str, Any] | None = None,
    publication_id: str | None = None,
) -> Publication:
    """Record a published object (`stored`: where and which bytes, as the store reported them) for a job in
    `publishing` and move the job to `published` (audited).

    Raises:
        InvalidTransition: the job is not in `publishing`.
        ValidationFailed: bad sha256 or payload, or the payload already belongs to another publication.
    """
    job = jobs.get_job(session, job_id, for_update=True)
    if JobState(job.state) != JobState.publishing:
        raise InvalidTransition(
            f"job {job_id} is {JobState(job.state).value}: only a publishing job can be published"
        )
    sha256 = stored.sha256
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256.lower()):
        raise ValidationFailed(f"job {job_id}: sha256 {sha256!r} is not 64 hex characters")
    if not 0 <= int(watermark_payload) < PAYLOAD_MAX:
        raise ValidationFailed(f"job {job_id}: watermark payload {watermark_payload} is not 32-bit")
    holder = find_by_watermark(session, watermark_payload)
    if holder is not None:
        raise ValidationFailed(
            f"job {job_id}: watermark payload {watermark_payload} already used by publication {holder.id}"
        )
    publication = Publication(
        id=publication_id or new_id(),
        job_id=job_id,
        bucket=stored.bucket,
        object_key=stored.key,
        version_id=stored.version_id,
        sha256=sha256.lower(),
        size_bytes=stored.size,
        watermark_payload=int(watermark_payload),
        c2pa_manifest_label=c2pa_manifest_label,
        c2pa_manifest=c2pa_manifest,
        published_at=utcnow(),
        published_by=published_by,
    )
    session.add(publication)
    session.flush()
    jobs.transition(
        session, job, to=JobState.published, actor=published_by, details={"publication_id": publication.id}
    )
    audit.record(
        session,
        action=AuditAction.PUBLICATION_CREATED,
        actor=published_by,
        subject_id=job.subject_id,
        job_id=job.id,
        resource_type="publication",
        resource_id=publication.id,
        details={
            "bucket": publication.bucket,
            "object_key": publication.object_key,
            "version_id": publication.version_id,
            "sha256": publication.sha256,
            "watermark_payload": publication.watermark_payload,
        },
    )
    return publication


def takedown(
    session: Session,
    *,
    publication_id: str,
    actor_email: str | None = None,
    actor: str | None = None,
    reason: str,
    storage: dict[str, Any] | None = None,
) -> Publication:
    """Record that a publication was taken down: who, when, why, and what the storage did.

    The actor is a user with the compliance or admin role (`actor_email`), or a system component
    (`actor="system:<component>"`, e.g. the consent-revocation sweep). The job moves to `taken_down`.

    Raises:
        ValidationFailed: empty reason or a bad system actor. RoleRequired: the user may not take down.
        InvalidTransition: the publication was already taken down.
    """
    if not reason or not reason.strip():
        raise ValidationFailed(f"taking down publication {publication_id} needs a reason")
    if (actor_email is None) == (actor is None):
        raise ValueError("pass exactly one of `actor_email` or `actor`")
    if actor is not None and not actor.startswith("system:"):
        raise ValidationFailed(f"takedown actor {actor!r} must be a user email or system:<component>")
    who = (
        actor
        if actor is not None
        else require_role(
            session, email=str(actor_email), roles=TAKEDOWN_ROLES, action="publication.takedown"
        ).email
    )
    publication = get_publication(session, publication_id)
    if publication.taken_down_at is not None:
        raise InvalidTransition(
            f"publication {publication_id} was already taken down at "
            f"{audit.format_time(publication.taken_down_at)}"
        )
    publication.taken_down_at = utcnow()
    publication.taken_down_by = who
    publication.takedown_reason = reason.strip()
    session.flush()
    job = jobs.get_job(session, publication.job_id, for_update=True)
    if JobState(job.state) == JobState.published:
        jobs.transition(
            session,
            job,
            to=JobState.taken_down,
            actor=who,
            details={"publication_id": publication.id, "reason": publication.takedown_reason},
        )
    audit.record(
        session,
        action=AuditAction.PUBLICATION_TAKEN_DOWN,
        actor=who,
        subject_id=job.subject_id,
        job_id=job.id,
        resource_type="publication",
        resource_id=publication.id,
        details={"reason": publication.takedown_reason, "storage": storage or {}},
    )
    return publication


def describe(session: Session, publication: Publication) -> PublicationRecord:
    """Everything a verifier or auditor wants about a publication: job, consent, model, reviewer."""
    job = jobs.get_job(session, publication.job_id)
    consent = session.get(Consent, job.consent_id) if job.consent_id else None
    decision = session.scalars(select(ReviewDecision).where(ReviewDecision.job_id == job.id)).first()
    reviewer = session.get(User, decision.reviewer_id) if decision is not None else None
    return PublicationRecord(
        publication_id=publication.id,
        job_id=job.id,
        subject_id=job.subject_id,
        bucket=publication.bucket,
        object_key=publication.object_key,
        version_id=publication.version_id,
        sha256=publication.sha256,
        watermark_payload=publication.watermark_payload,
        published_at=publication.published_at,
        published_by=publication.published_by,
        consent_id=job.consent_id,
        consent_version=consent.version if consent is not None else None,
        consent_revoked=consent is not None and consent.revoked_at is not None,
        model_sha256=job.model_sha256,
        reviewer=reviewer.email if reviewer is not None else None,
        review_verdict=str(decision.verdict) if decision is not None else None,
        taken_down_at=publication.taken_down_at,
        taken_down_by=publication.taken_down_by,
        takedown_reason=publication.takedown_reason,
    )


def input_hashes(session: Session, job: Job) -> dict[str, str]:
    """The sha256 of the job's portrait and driving video (for the provenance manifest)."""
    out: dict[str, str] = {}
    for role, asset_id in (("portrait", job.portrait_asset_id), ("driving video", job.driving_asset_id)):
        asset = session.get(Asset, asset_id)
        if asset is not None:
            out[role] = asset.sha256
    return out


def _job_subject(session: Session, job_id: str) -> str | None:
    job = session.get(Job, job_id)
    return job.subject_id if job is not None else None


def record_publish_queued(
    session: Session, *, job_id: str, actor: str, mode: str, flow_run_id: str | None
) -> None:
    """Audit that a job's publication was queued (`publish.queued`: how it runs, by whom)."""
    audit.record(
        session,
        action=AuditAction.PUBLISH_QUEUED,
        actor=actor,
        subject_id=_job_subject(session, job_id),
        job_id=job_id,
        resource_type="job",
        resource_id=job_id,
        details={"mode": mode, "flow_run_id": flow_run_id},
    )


def record_publish_failed(
    session: Session, *, job_id: str, actor: str, error_type: str, error: str, run_id: str | None = None
) -> None:
    """Audit that a publish run gave up (`publish.attempt_failed`), so the pages can show why, and release
    that run's claim on the job in the same transaction (`jobs.release_claim`): a retry this event allows
    never finds the job still held by the run that failed."""
    released = (
        jobs.release_claim(session, job_id=job_id, flow_run_id=run_id)
        if run_id is not None and session.get(Job, job_id) is not None
        else False
    )
    audit.record(
        session,
        action=AuditAction.PUBLISH_ATTEMPT_FAILED,
        actor=actor,
        subject_id=_job_subject(session, job_id),
        job_id=job_id,
        resource_type="job",
        resource_id=job_id,
        details={"error_type": error_type, "error": error, "claim_released": released},
    )


def record_orphan_removed(
    session: Session, *, job_id: str, actor: str, bucket: str, key: str, versions: int
) -> None:
    """Audit the removal of an upload at a job's published key that no publication row records
    (`publication.orphan_removed`: left by a run killed between upload and record)."""
    audit.record(
        session,
        action=AuditAction.PUBLICATION_ORPHAN_REMOVED,
        actor=actor,
        subject_id=jobs.get_job(session, job_id).subject_id,
        job_id=job_id,
        resource_type="object",
        resource_id=key[:100],
        details={"bucket": bucket, "key": key, "versions": versions},
    )


def record_download(session: Session, *, publication_id: str, job_id: str, actor: str, sha256: str) -> None:
    """Audit that someone downloaded a live publication (`publication.downloaded`, checked against `sha256`)."""
    audit.record(
        session,
        action=AuditAction.PUBLICATION_DOWNLOADED,
        actor=actor,
        job_id=job_id,
        resource_type="publication",
        resource_id=publication_id,
        details={"sha256": sha256},
    )
