"""Subjects (people whose likeness may be used) and their likeness reference photos."""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import record as audit
from governance.audit.actions import AuditAction
from governance.enums import Role
from governance.errors import NotFound, ValidationFailed
from governance.schema import LikenessReference, Subject
from governance.users import require_role

REFERENCE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")  # whole string (fullmatch)
# Control, format (zero-width, bidi) and line/paragraph separators: invisible, or breaking lines and logs.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp"})
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
RECORDING_ROLES = (Role.compliance, Role.admin)


def check_sha256(value: str, what: str) -> str:
    """A lower-case hex SHA-256, or ValidationFailed naming `what`."""
    cleaned = value.strip().lower()
    if not SHA256_PATTERN.match(cleaned):
        raise ValidationFailed(f"{what} {value!r} is not a SHA-256 (64 hex digits)")
    return cleaned


def get_subject(session: Session, subject_id: str) -> Subject:
    """The subject with this id, or NotFound."""
    subject = session.get(Subject, subject_id)
    if subject is None:
        raise NotFound(f"subject {subject_id} not found")
    return subject


def normalise_reference(reference: str) -> str:
    """The canonical form of a subject reference: Unicode NFC, trimmed; control characters refused.

    Two references that look the same must be the same string, or the uniqueness check would let a
    second subject in under what reads as the first one's reference.
    """
    for char in reference:
        if unicodedata.category(char) in _INVISIBLE:
            raise ValidationFailed(
                f"subject reference {reference!r} contains the control character "
                f"U+{ord(char):04X}: use letters, digits or ._:-"
            )
    cleaned = unicodedata.normalize("NFC", reference).strip()
    if not REFERENCE_PATTERN.fullmatch(cleaned):
        raise ValidationFailed(f"subject reference {reference!r} must be 1-100 letters, digits or ._:-")
    return cleaned


def find_subject(session: Session, id_or_reference: str) -> Subject:
    """A subject by id or by the organisation's reference (normalised as when recorded), or NotFound."""
    lookup = unicodedata.normalize("NFC", id_or_reference).strip()
    subject = session.get(Subject, lookup) or session.scalar(
        select(Subject).where(Subject.reference == lookup)
    )
    if subject is None:
        raise NotFound(f"subject {id_or_reference} not found")
    return subject


def list_subjects(session: Session) -> list[Subject]:
    """Every subject, by reference."""
    return list(session.scalars(select(Subject).order_by(Subject.reference)))


def add_subject(session: Session, *, reference: str, display_name: str, created_by: str) -> Subject:
    """Record a subject (compliance or admin; audited as `subject.created`, without the name).

    The reference is normalised (NFC, trimmed; control characters refused) before the uniqueness check.
    """
    user = require_role(session, user_id=created_by, roles=RECORDING_ROLES, action="subject.create")
    reference = normalise_reference(reference)
    if not display_name.strip():
        raise ValidationFailed("subject display name is empty")
    if session.scalar(select(Subject.id).where(Subject.reference == reference)) is not None:
        raise ValidationFailed(f"subject reference {reference} already exists")
    subject = Subject(reference=reference, display_name=display_name.strip(), created_by=user.id)
    session.add(subject)
    session.flush()
    audit.record(
        session,
        action=AuditAction.SUBJECT_CREATED,
        actor=user.email,
        subject_id=subject.id,
        resource_type="subject",
        resource_id=subject.id,
        details={"reference": reference},
    )
    return subject


def add_reference(
    session: Session, *, subject_id: str, bucket: str, object_key: str, sha256: str, created_by: str
) -> LikenessReference:
    """Attach a reference photo (already stored) to a subject; audited as `subject.reference_added`."""
    user = require_role(session, user_id=created_by, roles=RECORDING_ROLES, action="subject.add_reference")
    subject = get_subject(session, subject_id)
    if not bucket or not object_key:
        raise ValidationFailed("a likeness reference needs a bucket and an object key")
    reference = LikenessReference(
        subject_id=subject.id,
        bucket=bucket,
        object_key=object_key,
        sha256=check_sha256(sha256, "reference sha256"),
        created_by=user.id,
    )
    session.add(reference)
    session.flush()
    audit.record(
        session,
        action=AuditAction.SUBJECT_REFERENCE_ADDED,
        actor=user.email,
        subject_id=subject.id,
        resource_type="likeness_reference",
        resource_id=reference.id,
        details={"bucket": bucket, "object_key": object_key, "sha256": reference.sha256},
    )
    return reference


def active_references(session: Session, subject_id: str) -> list[LikenessReference]:
    """The subject's active reference photos, newest first."""
    get_subject(session, subject_id)
    statement = (
        select(LikenessReference)
        .where(LikenessReference.subject_id == subject_id, LikenessReference.active.is_(True))
        .order_by(LikenessReference.created_at.desc())
    )
    return list(session.scalars(statement))
