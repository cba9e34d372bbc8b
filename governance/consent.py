"""Consent: grant, amend (a new version; the old one stays readable), revoke, expiry, and verify.

A consent is a lineage of versions sharing `lineage_id`; only the newest version (not superseded) is
in force. `verify` answers one question the pipeline asks twice (before rendering and before
publishing): which consent version covers this subject, purpose, channel and territory at this time?
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import record as audit
from governance.audit.actions import AuditAction
from governance.enums import Role
from governance.errors import (
    AlreadyRevoked,
    ConsentExpired,
    ConsentMissing,
    ConsentNotYetValid,
    ConsentRevoked,
    ConsentScopeError,
    NotFound,
    ValidationFailed,
)
from governance.publications import publications_for_consent
from governance.schema import Consent
from governance.subjects import check_sha256, get_subject
from governance.types import new_id, utcnow
from governance.users import require_role
from governance.vocabulary import WORLD, check_term, check_terms

RECORDING_ROLES = (Role.compliance, Role.admin)
_UNSET: Any = object()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file (governance's own: it may import neither `pipeline` nor `models`)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def check_evidence(path: Path, expected_sha256: str) -> str:
    """The evidence file must exist and hash to `expected_sha256`; returns the hash."""
    expected = check_sha256(expected_sha256, "evidence sha256")
    if not path.is_file():
        raise ValidationFailed(f"evidence file {path} not found")
    actual = sha256_file(path)
    if actual != expected:
        raise ValidationFailed(f"evidence file {path} has sha256 {actual}, expected {expected}")
    return actual


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValidationFailed(f"{name} {value.isoformat()} has no time zone")
    return value


def require_future(valid_until: datetime | None, *, now: datetime, name: str = "valid_until") -> None:
    """A consent's validity must end in the future; an end already passed is named as such (not as "not
    after valid_from", though it often is that too). The one place for this rule: the CLI and the console
    call it, `name` saying the option or field as the person typed it."""
    if valid_until is not None and valid_until <= now:
        raise ValidationFailed(
            f"{name} {valid_until.isoformat()} is in the past: a consent's validity must end in the future"
        )


def check_validity(valid_from: datetime, valid_until: datetime | None, *, now: datetime) -> None:
    """valid_until must be in the future (checked first: the more telling cause) and after valid_from."""
    _aware(valid_from, "valid_from")
    if valid_until is None:
        return
    _aware(valid_until, "valid_until")
    require_future(valid_until, now=now)
    if valid_until <= valid_from:
        raise ValidationFailed(
            f"valid_until {valid_until.isoformat()} is not after valid_from {valid_from.isoformat()}"
        )


def _scope(consent: Consent) -> dict[str, Any]:
    return {
        "purposes": consent.purposes,
        "channels": consent.channels,
        "territories": consent.territories,
        "valid_from": audit.format_time(consent.valid_from),
        "valid_until": audit.format_time(consent.valid_until) if consent.valid_until else None,
        "evidence_key": consent.evidence_key,
        "evidence_sha256": consent.evidence_sha256,
    }


def get_consent(session: Session, consent_id: str) -> Consent:
    """One consent version by id, or NotFound."""
    consent = session.get(Consent, consent_id)
    if consent is None:
        raise NotFound(f"consent {consent_id} not found")
    return consent


def history(session: Session, consent_id: str) -> list[Consent]:
    """Every version of the consent that `consent_id` belongs to, oldest first."""
    consent = get_consent(session, consent_id)
    statement = select(Consent).where(Consent.lineage_id == consent.lineage_id).order_by(Consent.version)
    return list(session.scalars(statement))


def current_version(session: Session, consent_id: str) -> Consent:
    """The version in force of the consent that `consent_id` belongs to."""
    return history(session, consent_id)[-1]


def list_consents(
    session: Session, *, subject_id: str | None = None, include_superseded: bool = False
) -> list[Consent]:
    """Consents (current versions unless `include_superseded`), newest first."""
    statement = select(Consent)
    if subject_id is not None:
        statement = statement.where(Consent.subject_id == subject_id)
    if not include_superseded:
        statement = statement.where(Consent.superseded_by_id.is_(None))
    return list(session.scalars(statement.order_by(Consent.recorded_at.desc(), Consent.version.desc())))


def grant(
    session: Session,
    *,
    subject_id: str,
    purposes: Iterable[str],
    channels: Iterable[str],
    territories: Iterable[str],
    valid_from: datetime,
    valid_until: datetime | None,
    evidence_path: Path,
    evidence_sha256: str,
    evidence_key: str,
    recorded_by: str,
    notes: str = "",
    now: datetime | None = None,
) -> Consent:
    """Record version 1 of a new consent (compliance or admin; audited as `consent.granted`).

    The evidence document must be readable at `evidence_path` and hash to `evidence_sha256`;
    `evidence_key` says where it is kept.
    """
    now = now or utcnow()
    user = require_role(session, user_id=recorded_by, roles=RECORDING_ROLES, action="consent.grant")
    subject = get_subject(session, subject_id)
    consent = Consent(
        subject_id=subject.id,
        version=1,
        purposes=check_terms("purpose", purposes),
        channels=check_terms("channel", channels),
        territories=check_terms("territory", territories),
        valid_from=valid_from,
        valid_until=valid_until,
        evidence_key=_evidence_key(evidence_key),
        evidence_sha256="",
        notes=notes,
        recorded_by=user.id,
        recorded_at=now,
    )
    check_validity(valid_from, valid_until, now=now)
    consent.evidence_sha256 = check_evidence(evidence_path, evidence_sha256)
    consent.id = new_id()
    consent.lineage_id = consent.id
    session.add(consent)
    session.flush()
    audit.record(
        session,
        action=AuditAction.CONSENT_GRANTED,
        actor=user.email,
        subject_id=subject.id,
        resource_type="consent",
        resource_id=consent.id,
        details={"lineage_id": consent.lineage_id, "version": 1, **_scope(consent)},
    )
    return consent


def _evidence_key(key: str) -> str:
    if not key or not key.strip():
        raise ValidationFailed("evidence key is empty: say where the evidence document is kept")
    return key.strip()


def amend(
    session: Session,
    *,
    consent_id: str,
    recorded_by: str,
    reason: str,
    purposes: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    territories: Sequence[str] | None = None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = _UNSET,
    evidence_path: Path | None = None,
    evidence_sha256: str | None = None,
    evidence_key: str | None = None,
    notes: str | None = None,
    now: datetime | None = None,
) -> Consent:
    """Write the next version of a consent with the given changes; the old version stays as it was.

    Only the version in force can be amended, and not once revoked. New evidence, if any, is checked
    like at grant. Audited as `consent.amended` with the fields that changed and the live publications
    the new version no longer covers (due for takedown, like after a revocation).
    """
    now = now or utcnow()
    user = require_role(session, user_id=recorded_by, roles=RECORDING_ROLES, action="consent.amend")
    old = get_consent(session, consent_id)
    if old.superseded_by_id is not None:
        raise ValidationFailed(
            f"consent {old.id} was superseded by {old.superseded_by_id}: amend the current version"
        )
    if old.revoked_at is not None:
        raise ConsentRevoked(f"consent {old.id} is revoked: grant a new consent instead")
    if not reason.strip():
        raise ValidationFailed(f"amending consent {old.id} needs a reason")
    new = Consent(
        lineage_id=old.lineage_id,
        version=old.version + 1,
        subject_id=old.subject_id,
        purposes=check_terms("purpose", purposes) if purposes is not None else list(old.purposes),
        channels=check_terms("channel", channels) if channels is not None else list(old.channels),
        territories=check_terms("territory", territories)
        if territories is not None
        else list(old.territories),
        valid_from=valid_from or old.valid_from,
        valid_until=old.valid_until if valid_until is _UNSET else valid_until,
        evidence_key=_evidence_key(evidence_key) if evidence_key is not None else old.evidence_key,
        evidence_sha256=old.evidence_sha256,
        notes=old.notes if notes is None else notes,
        recorded_by=user.id,
        recorded_at=now,
    )
    check_validity(new.valid_from, new.valid_until, now=now)
    if (evidence_path is None) != (evidence_sha256 is None):
        raise ValidationFailed("new evidence needs both the file and its sha256")
    if evidence_path is not None and evidence_sha256 is not None:
        if evidence_key is None:
            raise ValidationFailed("new evidence needs a key saying where it is kept")
        new.evidence_sha256 = check_evidence(evidence_path, evidence_sha256)
    before, after = _scope(old), _scope(new)
    changes = {
        field: {"from": before[field], "to": after[field]}
        for field in before
        if before[field] != after[field]
    }
    if old.notes != new.notes:
        changes["notes"] = {"from": old.notes, "to": new.notes}
    if not changes:
        raise ValidationFailed(f"amendment of consent {old.id} changes nothing")
    session.add(new)
    session.flush()
    old.superseded_by_id = new.id
    old.superseded_at = now
    session.flush()
    # withdrawals reads consents, so it is imported here rather than at the top
    from governance.withdrawals import takedowns_due

    due = [d.publication_id for d in takedowns_due(session, consent_id=new.id, at=now)]
    audit.record(
        session,
        action=AuditAction.CONSENT_AMENDED,
        actor=user.email,
        subject_id=old.subject_id,
        resource_type="consent",
        resource_id=new.id,
        details={
            "lineage_id": old.lineage_id,
            "version": new.version,
            "supersedes": old.id,
            "reason": reason.strip(),
            "changes": changes,
            "publications_to_take_down": due,
        },
    )
    return new


def revoke(
    session: Session, *, consent_id: str, revoked_by: str, reason: str, now: datetime | None = None
) -> Consent:
    """Revoke the consent (its version in force) from now on; a consent is revoked once.

    Audited as `consent.revoked`, with the live publications made under the consent: from now on they
    are due for takedown (`governance.withdrawals.takedowns_due`), which `flows.takedown.steps` carries out
    at once and the `takedown` sweep retries until done. Jobs not yet published fail their next `verify`.
    """
    now = now or utcnow()
    user = require_role(session, user_id=revoked_by, roles=RECORDING_ROLES, action="consent.revoke")
    consent = current_version(session, consent_id)
    if consent.revoked_at is not None:
        raise AlreadyRevoked(
            f"consent {consent.id} was already revoked at {audit.format_time(consent.revoked_at)}"
        )
    if not reason.strip():
        raise ValidationFailed(f"revoking consent {consent.id} needs a reason")
    consent.revoked_at = now
    consent.revoked_by = user.id
    consent.revoke_reason = reason.strip()
    session.flush()
    due = [p.id for p in publications_for_consent(session, consent.id, active_only=True)]
    audit.record(
        session,
        action=AuditAction.CONSENT_REVOKED,
        actor=user.email,
        subject_id=consent.subject_id,
        resource_type="consent",
        resource_id=consent.id,
        details={
            "lineage_id": consent.lineage_id,
            "version": consent.version,
            "reason": consent.revoke_reason,
            "publications_to_take_down": due,
        },
    )
    _withdraw_models(session, consent, actor=user.email, now=now)
    return consent


def _withdraw_models(session: Session, consent: Consent, *, actor: str, now: datetime) -> None:
    """Models trained on this consent's footage stop rendering (see governance.models_registry)."""
    from governance.models_registry import withdraw_for_consent

    withdraw_for_consent(session, consent=consent, actor=actor, now=now)


@dataclass(frozen=True)
class _Standing:
    consent: Consent
    covers: dict[str, bool]
    problem: type[Exception] | None
    why: str


def _standing(consent: Consent, *, purpose: str, channel: str, territory: str, at: datetime) -> _Standing:
    covers = {
        "purpose": purpose in consent.purposes,
        "channel": channel in consent.channels,
        "territory": territory in consent.territories or WORLD in consent.territories,
    }
    if consent.revoked_at is not None and consent.revoked_at <= at:
        return _Standing(
            consent, covers, ConsentRevoked, f"revoked at {audit.format_time(consent.revoked_at)}"
        )
    if consent.valid_until is not None and consent.valid_until <= at:
        return _Standing(
            consent, covers, ConsentExpired, f"expired at {audit.format_time(consent.valid_until)}"
        )
    if consent.valid_from > at:
        return _Standing(
            consent, covers, ConsentNotYetValid, f"valid from {audit.format_time(consent.valid_from)}"
        )
    return _Standing(consent, covers, None, "in force")


_PRIORITY: list[type[Exception]] = [ConsentRevoked, ConsentExpired, ConsentNotYetValid]
_SCOPE_FIELD = {"purpose": "purposes", "channel": "channels", "territory": "territories"}


def lapse(
    session: Session,
    *,
    consent_id: str,
    purpose: str,
    channel: str,
    territory: str,
    at: datetime | None = None,
) -> str | None:
    """Why the consent `consent_id` belongs to no longer covers this use at `at`, or None while it does.

    Looks at the lineage's version in force (a job records the version it was verified under; an
    amendment or a revocation happens to a later version). The answer names the consent and version
    and what no longer covers the use, e.g. `consent C (version 2) no longer covers territory 'DE'
    (territories now FR)`, or that it was revoked, with the reason, or expired.
    """
    at = _aware(at, "at") if at is not None else utcnow()
    current = current_version(session, consent_id)
    name = f"consent {current.id} (version {current.version}"
    name += f" of lineage {current.lineage_id})" if current.version > 1 else ")"
    standing = _standing(current, purpose=purpose, channel=channel, territory=territory, at=at)
    if standing.problem is ConsentRevoked:
        return f"{name} was {standing.why}: {current.revoke_reason}"
    value = {"purpose": purpose, "channel": channel, "territory": territory}
    gaps = [
        f"{dim} {value[dim]!r} ({_SCOPE_FIELD[dim]} now {', '.join(getattr(current, _SCOPE_FIELD[dim]))})"
        for dim in ("purpose", "channel", "territory")
        if not standing.covers[dim]
    ]
    if gaps:
        return f"{name} no longer covers {'; '.join(gaps)}"
    if standing.problem is not None:
        return f"{name} {standing.why}" if standing.problem is ConsentExpired else f"{name} is {standing.why}"
    return None


def verify(
    session: Session,
    *,
    subject_id: str,
    purpose: str,
    channel: str,
    territory: str,
    at: datetime | None = None,
) -> Consent:
    """The consent version in force that covers this use at `at` (default now), or a specific ConsentError.

    When no consent covers the use, the error says why: none at all, not yet valid, expired, revoked,
    or which of purpose, channel and territory no consent covers.
    """
    at = _aware(at, "at") if at is not None else utcnow()
    check_term("purpose", purpose)
    check_term("channel", channel)
    check_term("territory", territory)
    get_subject(session, subject_id)
    current = list_consents(session, subject_id=subject_id)
    if not current:
        raise ConsentMissing(f"subject {subject_id} has no consent")
    standings = [_standing(c, purpose=purpose, channel=channel, territory=territory, at=at) for c in current]
    in_scope = [s for s in standings if all(s.covers.values())]
    for standing in in_scope:
        if standing.problem is None:
            return standing.consent
    use = f"{purpose}/{channel}/{territory}"
    if in_scope:
        worst = min(in_scope, key=lambda s: _PRIORITY.index(s.problem))  # type: ignore[arg-type]
        assert worst.problem is not None
        raise worst.problem(
            f"consent {worst.consent.id} for subject {subject_id} covers {use} but is {worst.why}"
        )
    missing = [
        dim for dim in ("purpose", "channel", "territory") if not any(s.covers[dim] for s in standings)
    ]
    if not missing:  # each dimension is covered somewhere, but never all three by one consent
        missing = ["purpose, channel and territory together"]
    value = {"purpose": purpose, "channel": channel, "territory": territory}
    named = ", ".join(f"{dim} {value[dim]!r}" if dim in value else dim for dim in missing)
    raise ConsentScopeError(f"no consent of subject {subject_id} covers {named}")


def expiring(session: Session, *, within: timedelta, now: datetime | None = None) -> list[Consent]:
    """Current, unrevoked consents whose validity ends within `within` from now (for renewal reminders)."""
    now = now or utcnow()
    statement = select(Consent).where(
        Consent.superseded_by_id.is_(None),
        Consent.revoked_at.is_(None),
        Consent.valid_until.is_not(None),
        Consent.valid_until > now,
        Consent.valid_until <= now + within,
    )
    return list(session.scalars(statement.order_by(Consent.valid_until)))
