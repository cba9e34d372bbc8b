"""The governance schema: SQLAlchemy 2 typed models. Alembic (`migrations/`) is the only way it changes.

Ids are UUID strings. Timestamps are aware UTC. Enum columns are stored as strings with a CHECK
constraint (portable across SQLite and PostgreSQL). No relationship cascades: nothing here deletes
rows behind a caller's back, and `audit_events` refuses UPDATE and DELETE by trigger.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from governance.enums import AssetKind, JobState, ModelStatus, Outcome, Verdict
from governance.types import UTCDateTime, new_id, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(36)
SHA256 = String(64)
ACTOR = String(320)  # a user's email, or `system:<component>`
OBJECT_KEY = String(1024)
BUCKET = String(63)


def _enum(enum_cls: type[StrEnum], name: str) -> Enum:
    """A portable enum column: VARCHAR plus a named CHECK constraint, storing the values."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so constraint names are stable across backends."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class User(Base):
    """A person who acts on the system; what they may do is given by `roles`."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(ACTOR)
    disabled_at: Mapped[datetime | None] = mapped_column()

    def has_role(self, *roles: str) -> bool:
        """True when the user is active and holds at least one of `roles`."""
        return self.active and any(role in self.roles for role in roles)


class Subject(Base):
    """A person whose likeness may be animated; `reference` is the organisation's own id for them."""

    __tablename__ = "subjects"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    reference: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(ID, ForeignKey("users.id"))


class LikenessReference(Base):
    """A reference photo of a subject: what portraits and outputs are compared against."""

    __tablename__ = "likeness_references"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    subject_id: Mapped[str] = mapped_column(ID, ForeignKey("subjects.id"), index=True)
    bucket: Mapped[str] = mapped_column(BUCKET)
    object_key: Mapped[str] = mapped_column(OBJECT_KEY)
    sha256: Mapped[str] = mapped_column(SHA256)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(ID, ForeignKey("users.id"))


class Consent(Base):
    """One version of a consent. Versions of one consent share `lineage_id` (the first version's id).

    Amending writes a new version and marks the old one superseded; the old row stays as it was.
    """

    __tablename__ = "consents"
    __table_args__ = (
        UniqueConstraint("lineage_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("valid_until IS NULL OR valid_until > valid_from", name="validity_order"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    lineage_id: Mapped[str] = mapped_column(ID, index=True)
    version: Mapped[int] = mapped_column(Integer)
    subject_id: Mapped[str] = mapped_column(ID, ForeignKey("subjects.id"), index=True)
    purposes: Mapped[list[str]] = mapped_column(JSON)
    channels: Mapped[list[str]] = mapped_column(JSON)
    territories: Mapped[list[str]] = mapped_column(JSON)
    valid_from: Mapped[datetime] = mapped_column()
    valid_until: Mapped[datetime | None] = mapped_column()
    evidence_key: Mapped[str] = mapped_column(OBJECT_KEY)
    evidence_sha256: Mapped[str] = mapped_column(SHA256)
    notes: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[str] = mapped_column(ID, ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    superseded_by_id: Mapped[str | None] = mapped_column(ID, ForeignKey("consents.id"))
    superseded_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_by: Mapped[str | None] = mapped_column(ID, ForeignKey("users.id"))
    revoke_reason: Mapped[str | None] = mapped_column(Text)


class Asset(Base):
    """An object in storage the system reads: a portrait, a driving video, a reference, evidence, an output."""

    __tablename__ = "assets"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    kind: Mapped[AssetKind] = mapped_column(_enum(AssetKind, "asset_kind"))
    bucket: Mapped[str] = mapped_column(BUCKET)
    object_key: Mapped[str] = mapped_column(OBJECT_KEY)
    sha256: Mapped[str] = mapped_column(SHA256, index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100), default="")
    media_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    subject_id: Mapped[str | None] = mapped_column(ID, ForeignKey("subjects.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(ACTOR)


class Batch(Base):
    """A set of jobs submitted together by one requester (the four-eyes rule keys off `requested_by`)."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    requested_by: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Job(Base):
    """One talking-head video to make: who, from what, for which use, and where it stands.

    `row_version` is an optimistic lock: two workers moving the same job cannot both win.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    batch_id: Mapped[str] = mapped_column(ID, ForeignKey("batches.id"), index=True)
    subject_id: Mapped[str] = mapped_column(ID, ForeignKey("subjects.id"), index=True)
    portrait_asset_id: Mapped[str] = mapped_column(ID, ForeignKey("assets.id"))
    driving_asset_id: Mapped[str] = mapped_column(ID, ForeignKey("assets.id"))
    purpose: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    territory: Mapped[str] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[JobState] = mapped_column(
        _enum(JobState, "job_state"), default=JobState.submitted, index=True
    )
    consent_id: Mapped[str | None] = mapped_column(ID, ForeignKey("consents.id"))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    model_sha256: Mapped[str | None] = mapped_column(SHA256)
    inference_mode: Mapped[str | None] = mapped_column(String(16))
    output_bucket: Mapped[str | None] = mapped_column(BUCKET)
    output_key: Mapped[str | None] = mapped_column(OBJECT_KEY)
    output_sha256: Mapped[str | None] = mapped_column(SHA256)
    check_scores: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    policy_version: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[Outcome | None] = mapped_column(_enum(Outcome, "outcome"))
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    state_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    row_version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": row_version}


class CheckResult(Base):
    """One evaluation of a job's check scores against the policy in force."""

    __tablename__ = "check_results"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(ID, ForeignKey("jobs.id"), index=True)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON)
    policy_version: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[Outcome] = mapped_column(_enum(Outcome, "outcome"))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewDecision(Base):
    """A human verdict on a job, with a snapshot of what was judged. One per job (unique)."""

    __tablename__ = "review_decisions"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(ID, ForeignKey("jobs.id"), unique=True)
    reviewer_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), index=True)
    verdict: Mapped[Verdict] = mapped_column(_enum(Verdict, "verdict"))
    reason: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)


class Publication(Base):
    """A published output: where it lies, what it hashes to, its watermark and provenance, its takedown."""

    __tablename__ = "publications"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(ID, ForeignKey("jobs.id"), unique=True)
    bucket: Mapped[str] = mapped_column(BUCKET)
    object_key: Mapped[str] = mapped_column(OBJECT_KEY)
    version_id: Mapped[str | None] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(SHA256, index=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    watermark_payload: Mapped[int] = mapped_column(BigInteger, unique=True)
    c2pa_manifest_label: Mapped[str | None] = mapped_column(String(255))
    c2pa_manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by: Mapped[str] = mapped_column(ACTOR)
    taken_down_at: Mapped[datetime | None] = mapped_column()
    taken_down_by: Mapped[str | None] = mapped_column(ACTOR)
    takedown_reason: Mapped[str | None] = mapped_column(Text)


class RegisteredModel(Base):
    """A model checkpoint that may render, known by its SHA-256; jobs name it through `jobs.model_sha256`.

    `status` decides whether it may render; `training_clips` (ModelTrainingClip) is its lineage.
    """

    __tablename__ = "registered_models"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(50))
    sha256: Mapped[str] = mapped_column(SHA256, unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[ModelStatus] = mapped_column(
        _enum(ModelStatus, "model_status"), default=ModelStatus.active
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(ACTOR)
    status_changed_at: Mapped[datetime | None] = mapped_column()
    status_changed_by: Mapped[str | None] = mapped_column(ACTOR)
    status_reason: Mapped[str | None] = mapped_column(Text)


class ModelTrainingClip(Base):
    """One clip of a registered model's training data: what it hashed to, whose face, under which consent."""

    __tablename__ = "model_training_clips"
    __table_args__ = (UniqueConstraint("model_id", "asset_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    model_id: Mapped[str] = mapped_column(ID, ForeignKey("registered_models.id"), index=True)
    asset_id: Mapped[str] = mapped_column(ID, ForeignKey("assets.id"))
    sha256: Mapped[str] = mapped_column(SHA256)
    subject_id: Mapped[str] = mapped_column(ID, ForeignKey("subjects.id"), index=True)
    consent_id: Mapped[str] = mapped_column(ID, ForeignKey("consents.id"), index=True)
    consent_lineage_id: Mapped[str] = mapped_column(ID, index=True)
    split: Mapped[str] = mapped_column(String(16))
    frames: Mapped[int] = mapped_column(Integer)
    origin: Mapped[str] = mapped_column(String(255), default="")


class AuditEvent(Base):
    """One link of the append-only, hash-chained audit log (see `governance.audit.record`).

    `seq` is the position in the chain (1, 2, 3 ... without gaps); `prev_hash` is unique, so two
    writers can never both extend the same head. No foreign keys: the log outlives what it describes.
    """

    __tablename__ = "audit_events"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(ACTOR, index=True)
    action: Mapped[str] = mapped_column(String(100), index=True)
    subject_id: Mapped[str | None] = mapped_column(ID, index=True)
    job_id: Mapped[str | None] = mapped_column(ID, index=True)
    resource_type: Mapped[str | None] = mapped_column(String(50))
    resource_id: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(SHA256, unique=True)
    hash: Mapped[str] = mapped_column(SHA256, unique=True)


Index("ix_audit_events_resource", AuditEvent.resource_type, AuditEvent.resource_id)
