"""Reads of personal data are on record: who looked at which job's media or publication's record, and when.

Writes are audited by the services that make them; reads change nothing, so they would leave no trace
without this. `record_read` checks the reader's role (a refusal is audited as `access.denied`, like any
other) and appends `access.read` naming what was read, in the caller's transaction: the read and its
record commit together. Details name resources, never their content.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from governance.audit import record as audit
from governance.audit.actions import AuditAction
from governance.enums import Role
from governance.schema import User
from governance.users import require_role


def record_read(
    session: Session,
    *,
    actor_email: str,
    roles: Iterable[Role],
    what: str,
    resource_type: str | None = None,
    resource_id: str | None = None,
    subject_id: str | None = None,
    job_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> User:
    """The reader, if they hold one of `roles`; the read is audited as `access.read` (`details.what`)."""
    user = require_role(session, email=actor_email, roles=roles, action=what)
    audit.record(
        session,
        action=AuditAction.ACCESS_READ,
        actor=user.email,
        subject_id=subject_id,
        job_id=job_id,
        resource_type=resource_type,
        resource_id=resource_id,
        details={"what": what, **(details or {})},
    )
    return user


def record_denied(
    session: Session,
    *,
    actor_email: str,
    user_id: str,
    attempted: str,
    required_roles: list[str],
    held_roles: list[str],
    details: dict[str, Any] | None = None,
) -> None:
    """Audit a refusal decided outside `require_role` (the console's route table) as `access.denied`.

    The same event `require_role` writes: `attempted` names the operation (`console:<route>`), never an
    event; `details` adds where it was attempted (method, path).
    """
    audit.record(
        session,
        action=AuditAction.ACCESS_DENIED,
        actor=actor_email,
        resource_type="user",
        resource_id=user_id,
        details={
            "attempted": attempted,
            **(details or {}),
            "required_roles": required_roles,
            "held_roles": held_roles,
        },
    )
