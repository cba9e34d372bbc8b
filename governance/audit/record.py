"""The tamper-evident audit log: the one append service, plus the log's public names.

Each event's `hash` is SHA-256 over the canonical JSON of its fields plus `prev_hash` (the previous
event's hash; 64 zeros for the first): see `governance.audit.chain`. Appends are serialised so the chain
never forks: an advisory transaction lock on PostgreSQL; on SQLite every transaction begins IMMEDIATE
(governance.database), so the write lock is held before the head is read. `prev_hash` and `seq` are
unique as a last line of defence. The database refuses UPDATE and DELETE on the table (triggers, in the
first migration). Walking the chain: `governance.audit.verify`; queries and exports:
`governance.audit.query`. Their names are re-exported here, so callers use `governance.audit.record` only.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from governance.audit.actions import ACTION_PATTERN, AuditAction
from governance.audit.chain import (
    EXPORT_FIELDS,
    GENESIS_HASH,
    HASHED_FIELDS,
    compute_hash,
    event_fields,
    format_time,
    stored_hash_input,
)
from governance.audit.query import AuditFilter, ExportSummary, chain_head, export, iter_events, query
from governance.audit.verify import ChainReport, verify_chain, verify_export
from governance.canonical import canonical_json
from governance.errors import ValidationFailed
from governance.schema import AuditEvent
from governance.types import new_id, utcnow

__all__ = [
    "ACTION_PATTERN",
    "ADVISORY_LOCK_KEY",
    "AuditAction",
    "EXPORT_FIELDS",
    "GENESIS_HASH",
    "HASHED_FIELDS",
    "AuditFilter",
    "ChainReport",
    "ExportSummary",
    "canonical_json",
    "chain_head",
    "check_action",
    "compute_hash",
    "event_fields",
    "export",
    "format_time",
    "iter_events",
    "query",
    "record",
    "record_export",
    "record_verification",
    "stored_hash_input",
    "verify_chain",
    "verify_export",
]

# Key of the PostgreSQL advisory lock that serialises appends ("likeness audit" in ASCII, 63-bit).
ADVISORY_LOCK_KEY = 0x6C696B656E657373 & 0x7FFFFFFFFFFFFFFF


def _normalise_details(details: dict[str, Any] | None, action: str) -> tuple[dict[str, Any], str]:
    """Details as stored and read back, and their canonical text (what the hash covers)."""
    if details is None:
        return {}, "{}"
    if not isinstance(details, dict):
        raise ValidationFailed(f"audit details for {action} must be a mapping, got {type(details).__name__}")
    try:
        text_form = canonical_json(details)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"audit details for {action} are not plain JSON: {exc}") from None
    return json.loads(text_form), text_form


def _lock_chain(session: Session) -> None:
    """Serialise appenders until this transaction ends (PostgreSQL); SQLite already holds its write lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})


_HEAD_CACHE = "governance.audit.record.head"


def _next_link(session: Session) -> tuple[int, str]:
    """(seq, hash) of the chain's head, for the event about to be appended.

    The first append of a transaction takes the lock and reads the head; later appends in the same
    transaction (the lock still held) continue from the head they left. Inside a savepoint, which may
    roll back on its own, the head is always read afresh.
    """
    cached = session.info.get(_HEAD_CACHE)
    if cached is not None and cached[0] is session.get_transaction() and not session.in_nested_transaction():
        return cached[1], cached[2]
    _lock_chain(session)
    return chain_head(session) or (0, GENESIS_HASH)


def _remember_head(session: Session, seq: int, hash_: str) -> None:
    if session.in_nested_transaction():
        session.info.pop(_HEAD_CACHE, None)
    else:
        session.info[_HEAD_CACHE] = (session.get_transaction(), seq, hash_)


def check_action(action: object) -> AuditAction:
    """`action` if it is an `AuditAction`; else ValidationFailed naming what was passed."""
    if isinstance(action, AuditAction):
        return action
    if not isinstance(action, str) or not ACTION_PATTERN.match(action):
        raise ValidationFailed(
            f"audit action {action!r} is not a dotted lower-case name like 'consent.granted' "
            "(pass a governance.audit.actions.AuditAction)"
        )
    raise ValidationFailed(
        f"audit action {action!r} is a plain string: pass a governance.audit.actions.AuditAction"
    )


def record(
    session: Session,
    *,
    action: AuditAction,
    actor: str,
    subject_id: str | None = None,
    job_id: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction (never committed here).

    The event commits or rolls back with the change it describes. `actor` is a user's email or
    `system:<component>`; `action` is a member of `AuditAction` (`AuditAction.CONSENT_GRANTED`): a
    plain string is refused, even one equal to a member's value, so every event name is one of the
    closed list in `governance.audit.actions`.
    """
    name = check_action(action).value  # stored and hashed as the plain string
    if not actor or not actor.strip():
        raise ValidationFailed(f"audit action {action} has no actor")
    clean, details_text = _normalise_details(details, action)
    head_seq, prev_hash = _next_link(session)
    seq, event_id, occurred_at = head_seq + 1, new_id(), utcnow()
    hash_input = stored_hash_input(
        (
            seq,
            event_id,
            None,
            actor,
            name,
            subject_id,
            job_id,
            resource_type,
            resource_id,
            details_text,
            prev_hash,
            None,
        ),
        format_time(occurred_at),
    )
    event = AuditEvent(
        id=event_id,
        seq=seq,
        occurred_at=occurred_at,
        actor=actor,
        action=name,
        subject_id=subject_id,
        job_id=job_id,
        resource_type=resource_type,
        resource_id=resource_id,
        details=clean,
        prev_hash=prev_hash,
        hash=hashlib.sha256(hash_input.encode("utf-8")).hexdigest(),
    )
    session.add(event)  # written at the next flush or commit, in the order appended
    _remember_head(session, seq, event.hash)
    return event


def record_export(
    session: Session, *, actor: str, details: dict[str, Any], resource_type: str | None = None
) -> AuditEvent:
    """Audit that someone exported the log (`audit.exported`: format, count, chain head, filters)."""
    return record(
        session, action=AuditAction.AUDIT_EXPORTED, actor=actor, resource_type=resource_type, details=details
    )


def record_verification(session: Session, *, actor: str, ok: bool, details: dict[str, Any]) -> AuditEvent:
    """Audit a walk of the log: `audit.verified` when it held, `audit.verify_failed` when it broke."""
    action = AuditAction.AUDIT_VERIFIED if ok else AuditAction.AUDIT_VERIFY_FAILED
    return record(session, action=action, actor=actor, details=details)
