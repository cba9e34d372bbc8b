"""The model registry: which checkpoints may render, and on whose consented footage each was trained.

A model is known by the SHA-256 of its checkpoint file (what a job records as `model_sha256`). Only an
`active` registered model may render; `retire` takes one out of use, and revoking a consent that its
training data depends on marks it `consent_withdrawn` (`withdraw_for_consent`, called by
`governance.consent.revoke`). The training-data manifest (`ModelTrainingClip`) names, for every clip,
its hash, its subject and the consent version that allowed training on it, so "what was trained on my
face?" has an answer. Every change is audited; a refusal to train or to render is audited too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import record as audit
from governance.audit.actions import AuditAction, model_event
from governance.enums import AssetKind, ModelStatus, Role
from governance.errors import (
    ConsentError,
    ConsentExpired,
    ConsentMissing,
    ConsentNotYetValid,
    ConsentRevoked,
    ConsentScopeError,
    GovernanceError,
    InvalidTransition,
    NotFound,
    Refusal,
    ValidationFailed,
)
from governance.schema import Asset, Consent, Job, ModelTrainingClip, Publication, RegisteredModel, Subject
from governance.subjects import check_sha256, get_subject
from governance.types import utcnow
from governance.users import require_role
from governance.vocabulary import TRAINING_PURPOSE

REGISTERING_ROLES = (Role.operator, Role.compliance, Role.admin)
RETIRING_ROLES = (Role.compliance, Role.admin)
READING_ROLES = (Role.operator, Role.compliance, Role.admin, Role.auditor)
TRAINING_SPLITS = ("train", "heldout")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,49}$")


class ModelNotRenderable(GovernanceError):
    """The configured checkpoint is not a registered, active model."""


@dataclass(frozen=True)
class TrainingClip:
    """One clip a model was (or is about to be) trained on, already in storage at `bucket/object_key`."""

    sha256: str
    subject_id: str
    split: str
    frames: int
    bucket: str
    object_key: str
    size_bytes: int
    origin: str = ""


@dataclass(frozen=True)
class ModelWithdrawal:
    """What revoking a consent did to one model: it is withdrawn; these publications came from it."""

    model_id: str
    name: str
    version: str
    sha256: str
    publication_ids: tuple[str, ...]
    on_publications: str


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValidationFailed(f"time {value.isoformat()} has no time zone")
    return value


def training_consent(session: Session, *, subject_id: str, at: datetime | None = None) -> Consent:
    """The consent version in force at `at` whose purposes include model training, or a ConsentError.

    Channels and territories do not apply to training: the footage is not shown to anyone.
    """
    at = _aware(at) if at is not None else utcnow()
    get_subject(session, subject_id)
    current = list(
        session.scalars(
            select(Consent)
            .where(Consent.subject_id == subject_id, Consent.superseded_by_id.is_(None))
            .order_by(Consent.recorded_at.desc())
        )
    )
    if not current:
        raise ConsentMissing(f"subject {subject_id} has no consent")
    covering = [c for c in current if TRAINING_PURPOSE in c.purposes]
    if not covering:
        raise ConsentScopeError(f"no consent of subject {subject_id} covers purpose {TRAINING_PURPOSE!r}")
    problems: list[tuple[type[ConsentError], str]] = []
    for found in covering:
        if found.revoked_at is not None and found.revoked_at <= at:
            problems.append((ConsentRevoked, f"revoked at {audit.format_time(found.revoked_at)}"))
        elif found.valid_until is not None and found.valid_until <= at:
            problems.append((ConsentExpired, f"expired at {audit.format_time(found.valid_until)}"))
        elif found.valid_from > at:
            problems.append((ConsentNotYetValid, f"valid from {audit.format_time(found.valid_from)}"))
        else:
            return found
    kind, why = problems[0]
    raise kind(f"the {TRAINING_PURPOSE} consent of subject {subject_id} is {why}")


def check_training_consents(
    session: Session, *, subject_ids: Iterable[str], actor: str, at: datetime | None = None
) -> dict[str, Consent]:
    """The training consent of each subject; the first subject without one refuses the whole run (audited)."""
    at = at or utcnow()
    found: dict[str, Consent] = {}
    for subject_id in sorted(set(subject_ids)):
        try:
            found[subject_id] = training_consent(session, subject_id=subject_id, at=at)
        except ConsentError as exc:
            raise type(exc)(
                f"training refused: {exc}",
                refusal=Refusal(
                    action=AuditAction.TRAINING_REFUSED,
                    actor=actor,
                    subject_id=subject_id,
                    resource_type="subject",
                    resource_id=subject_id,
                    details={"error": type(exc).__name__, "reason": str(exc), "purpose": TRAINING_PURPOSE},
                ),
            ) from None
    return found


def _check_name(name: str, version: str) -> tuple[str, str]:
    if not _NAME.match(name or ""):
        raise ValidationFailed(f"model name {name!r} is not valid (letters, digits, . _ -; up to 100)")
    if not _VERSION.match(version or ""):
        raise ValidationFailed(f"model version {version!r} is not valid (letters, digits, . _ + -; up to 50)")
    return name, version


def _clip_asset(session: Session, clip: TrainingClip, actor: str) -> Asset:
    """The training-clip asset with this hash and subject, registered (audited) if it is new."""
    from governance.assets import register_asset

    sha256 = check_sha256(clip.sha256, "training clip sha256")
    existing = session.scalars(
        select(Asset)
        .where(
            Asset.sha256 == sha256, Asset.kind == AssetKind.training_clip, Asset.subject_id == clip.subject_id
        )
        .order_by(Asset.created_at)
    ).first()
    if existing is not None:
        return existing
    return register_asset(
        session,
        kind=AssetKind.training_clip,
        bucket=clip.bucket,
        object_key=clip.object_key,
        sha256=sha256,
        size_bytes=clip.size_bytes,
        actor=actor,
        media_type="application/x-torch-tensor",
        media_info={"frames": clip.frames, "origin": clip.origin},
        subject_id=clip.subject_id,
    )


def register_model(
    session: Session,
    *,
    name: str,
    version: str,
    sha256: str,
    config: dict[str, Any],
    actor_email: str,
    clips: Sequence[TrainingClip] = (),
    description: str = "",
    trained_at: datetime | None = None,
) -> RegisteredModel:
    """Register a checkpoint so it may render; audited as `model.registered` with its lineage.

    `clips` is the training-data manifest. Each clip's subject must hold a consent covering model
    training at `trained_at` (default now), else nothing is registered and the refusal is audited.
    A model with no clips was trained elsewhere: its lineage is recorded as unknown.
    """
    user = require_role(session, email=actor_email, roles=REGISTERING_ROLES, action="model.register")
    name, version = _check_name(name.strip(), version.strip())
    sha256 = check_sha256(sha256, "model sha256")
    if not isinstance(config, dict) or not config:
        raise ValidationFailed("a model needs its architecture config (a JSON object)")
    clash = session.scalars(select(RegisteredModel).where(RegisteredModel.sha256 == sha256)).first()
    if clash is not None:
        raise ValidationFailed(
            f"checkpoint sha256 {sha256} is already registered as {clash.name}@{clash.version}"
        )
    clash = session.scalars(
        select(RegisteredModel).where(RegisteredModel.name == name, RegisteredModel.version == version)
    ).first()
    if clash is not None:
        raise ValidationFailed(f"model {name}@{version} is already registered (sha256 {clash.sha256})")
    for clip in clips:
        if clip.split not in TRAINING_SPLITS:
            raise ValidationFailed(
                f"training clip split {clip.split!r} is not one of {', '.join(TRAINING_SPLITS)}"
            )
        if clip.frames < 1:
            raise ValidationFailed(f"training clip {clip.sha256[:12]} has no frames")
    consents = check_training_consents(
        session, subject_ids=[c.subject_id for c in clips], actor=user.email, at=trained_at
    )
    model = RegisteredModel(
        name=name,
        version=version,
        sha256=sha256,
        config=config,
        description=description.strip(),
        status=ModelStatus.active,
        created_by=user.email,
    )
    session.add(model)
    session.flush()
    seen: set[str] = set()
    for clip in clips:
        asset = _clip_asset(session, clip, user.email)
        if asset.id in seen:  # the same file listed twice is one clip of the lineage
            continue
        seen.add(asset.id)
        used = consents[clip.subject_id]
        session.add(
            ModelTrainingClip(
                model_id=model.id,
                asset_id=asset.id,
                sha256=asset.sha256,
                subject_id=clip.subject_id,
                consent_id=used.id,
                consent_lineage_id=used.lineage_id,
                split=clip.split,
                frames=clip.frames,
                origin=clip.origin[:255],
            )
        )
    session.flush()
    audit.record(
        session,
        action=AuditAction.MODEL_REGISTERED,
        actor=user.email,
        resource_type="model",
        resource_id=model.id,
        details={
            "name": name,
            "version": version,
            "sha256": sha256,
            "clips": len(clips),
            "subjects": sorted(consents),
            "consents": sorted({c.id for c in consents.values()}),
            "lineage": "recorded" if clips else "unknown (trained outside likeness)",
        },
    )
    return model


def get_model(session: Session, ref: str) -> RegisteredModel:
    """A registered model by id, checkpoint sha256, or `name@version`; NotFound otherwise."""
    ref = ref.strip()
    found = session.get(RegisteredModel, ref)
    if found is None and re.fullmatch(r"[0-9a-fA-F]{64}", ref):
        found = find_by_sha256(session, ref)
    if found is None and "@" in ref:
        name, _, version = ref.rpartition("@")
        found = session.scalars(
            select(RegisteredModel).where(RegisteredModel.name == name, RegisteredModel.version == version)
        ).first()
    if found is None:
        raise NotFound(f"model {ref} is not registered")
    return found


def find_by_sha256(session: Session, sha256: str) -> RegisteredModel | None:
    """The registered model of this checkpoint hash, if any."""
    return session.scalars(
        select(RegisteredModel).where(RegisteredModel.sha256 == sha256.strip().lower())
    ).first()


def list_models(session: Session, *, status: ModelStatus | str | None = None) -> list[RegisteredModel]:
    """Registered models, newest first (optionally of one status)."""
    statement = select(RegisteredModel)
    if status is not None:
        statement = statement.where(RegisteredModel.status == ModelStatus(status))
    return list(session.scalars(statement.order_by(RegisteredModel.created_at.desc(), RegisteredModel.name)))


def lineage(session: Session, model_id: str) -> list[tuple[ModelTrainingClip, Subject, Consent]]:
    """The model's training-data manifest: each clip with its subject and the consent version used."""
    statement = (
        select(ModelTrainingClip, Subject, Consent)
        .join(Subject, Subject.id == ModelTrainingClip.subject_id)
        .join(Consent, Consent.id == ModelTrainingClip.consent_id)
        .where(ModelTrainingClip.model_id == model_id)
        .order_by(Subject.reference, ModelTrainingClip.split, ModelTrainingClip.origin, ModelTrainingClip.id)
    )
    return [(clip, subject, used) for clip, subject, used in session.execute(statement)]


def publications_of(session: Session, model: RegisteredModel) -> list[Publication]:
    """Publications of jobs rendered with this model, oldest first (taken-down ones included)."""
    statement = (
        select(Publication)
        .join(Job, Job.id == Publication.job_id)
        .where(Job.model_sha256 == model.sha256)
        .order_by(Publication.published_at, Publication.id)
    )
    return list(session.scalars(statement))


def _set_status(
    session: Session,
    model: RegisteredModel,
    status: ModelStatus,
    *,
    actor: str,
    reason: str,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    before = ModelStatus(model.status)
    model.status = status
    model.status_changed_at = now
    model.status_changed_by = actor
    model.status_reason = reason
    session.flush()
    audit.record(
        session,
        action=model_event(status),
        actor=actor,
        resource_type="model",
        resource_id=model.id,
        details={
            "name": model.name,
            "version": model.version,
            "sha256": model.sha256,
            "from": before.value,
            "reason": reason,
            **(details or {}),
        },
    )


def retire_model(
    session: Session, *, ref: str, actor_email: str, reason: str, now: datetime | None = None
) -> RegisteredModel:
    """Take an active model out of use (compliance or admin; audited as `model.retired`)."""
    user = require_role(session, email=actor_email, roles=RETIRING_ROLES, action="model.retire")
    model = get_model(session, ref)
    if not reason.strip():
        raise ValidationFailed(f"retiring model {model.name}@{model.version} needs a reason")
    if ModelStatus(model.status) != ModelStatus.active:
        raise InvalidTransition(
            f"model {model.name}@{model.version} is already {ModelStatus(model.status).value}"
        )
    _set_status(
        session, model, ModelStatus.retired, actor=user.email, reason=reason.strip(), now=now or utcnow()
    )
    return model


def withdraw_for_consent(
    session: Session,
    *,
    consent: Consent,
    actor: str,
    now: datetime | None = None,
    on_publications: str | None = None,
) -> list[ModelWithdrawal]:
    """Mark every model trained under any version of `consent` as `consent_withdrawn` (audited).

    Called by `governance.consent.revoke`. Each withdrawal lists the model's publications for the
    compliance officer; `on_publications` (when None, the policy in force's `models.on_consent_withdrawn`)
    is recorded with it. A retired model is marked too: it must never return to use.
    """
    now = now or utcnow()
    if on_publications is None:
        on_publications = _policy_choice()
    model_ids = select(ModelTrainingClip.model_id).where(
        ModelTrainingClip.consent_lineage_id == consent.lineage_id
    )
    affected = session.scalars(
        select(RegisteredModel)
        .where(RegisteredModel.id.in_(model_ids), RegisteredModel.status != ModelStatus.consent_withdrawn)
        .order_by(RegisteredModel.created_at, RegisteredModel.id)
    ).all()
    withdrawals: list[ModelWithdrawal] = []
    for model in affected:
        publications = tuple(p.id for p in publications_of(session, model) if p.taken_down_at is None)
        _set_status(
            session,
            model,
            ModelStatus.consent_withdrawn,
            actor=actor,
            now=now,
            reason=f"consent {consent.id} (lineage {consent.lineage_id}) of subject {consent.subject_id} revoked",
            details={
                "consent_id": consent.id,
                "consent_lineage_id": consent.lineage_id,
                "subject_id": consent.subject_id,
                "publications": list(publications),
                "on_publications": on_publications,
            },
        )
        withdrawals.append(
            ModelWithdrawal(model.id, model.name, model.version, model.sha256, publications, on_publications)
        )
    return withdrawals


def _policy_choice() -> str:
    """`models.on_consent_withdrawn` of the policy in force.

    `consent.revoke` is called from the CLI, the web console and the flows, none of which pass a policy
    to it, so the deployment's policy file is found the way `flows.runtime.settings` finds it
    (`LIKENESS_POLICY_PATH`, else the default policy).
    """
    import os

    from governance.policy import load_policy

    return load_policy(os.environ.get("LIKENESS_POLICY_PATH") or None).models.on_consent_withdrawn


def renderable_problem(session: Session, sha256: str) -> tuple[RegisteredModel | None, str | None]:
    """(model, None) when the checkpoint with this hash may render, else (model or None, why not)."""
    model = find_by_sha256(session, sha256)
    if model is None:
        return (
            None,
            f"model checkpoint sha256 {sha256} is not registered: register it with `likeness model register`",
        )
    status = ModelStatus(model.status)
    if status != ModelStatus.active:
        why = f": {model.status_reason}" if model.status_reason else ""
        return (
            model,
            f"model {model.name}@{model.version} (sha256 {model.sha256[:12]}) is {status.value}{why}",
        )
    return model, None


def require_renderable(
    session: Session, *, sha256: str, actor: str, job_id: str | None = None
) -> RegisteredModel:
    """The active registered model of this checkpoint, or ModelNotRenderable (audited as `model.refused`)."""
    model, problem = renderable_problem(session, sha256)
    if problem is not None:
        raise ModelNotRenderable(
            problem,
            refusal=Refusal(
                action=AuditAction.MODEL_REFUSED,
                actor=actor,
                job_id=job_id,
                resource_type="model",
                resource_id=model.id if model is not None else sha256,
                details={"sha256": sha256, "reason": problem},
            ),
        )
    assert model is not None
    return model


def manifest_entry(session: Session, sha256: str) -> dict[str, str] | None:
    """What a C2PA manifest and `verify` say about the model: id, name, version, sha256 (None: unregistered)."""
    model = find_by_sha256(session, sha256) if sha256 else None
    if model is None:
        return None
    return {"id": model.id, "name": model.name, "version": model.version, "sha256": model.sha256}
