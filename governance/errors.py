"""Governance errors. All are terminal (never retried); messages are one line and name the cause and the id.

An error may carry a `refusal`: the audit event that records a governance refusal. The unit of work
(`governance.uow.unit_of_work`) rolls the failed work back and then commits that event on its own, so the
refusal is on record although nothing else was written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from governance.audit.actions import AuditAction


@dataclass(frozen=True)
class Refusal:
    """An audit event to record after the refused work has been rolled back."""

    action: AuditAction
    actor: str
    subject_id: str | None = None
    job_id: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class GovernanceError(Exception):
    """Base of every governance error."""

    def __init__(self, message: str, *, refusal: Refusal | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal


class NotFound(GovernanceError):
    """An id that names no row."""


class ValidationFailed(GovernanceError):
    """Input that cannot be recorded as given (dates, vocabulary, evidence, emails...)."""


class ConsentError(GovernanceError):
    """No consent in force covers the request."""


class ConsentMissing(ConsentError):
    """The subject has no consent at all."""


class ConsentNotYetValid(ConsentError):
    """The covering consent starts later."""


class ConsentExpired(ConsentError):
    """The covering consent has ended."""


class ConsentRevoked(ConsentError):
    """The covering consent was revoked."""


class ConsentScopeError(ConsentError):
    """The subject's consents do not cover this purpose, channel or territory."""


class AlreadyRevoked(ConsentError):
    """A consent can be revoked once."""


class InvalidTransition(GovernanceError):
    """A job state change that `ALLOWED_TRANSITIONS` does not allow (or a concurrent change)."""


class PermissionDenied(GovernanceError):
    """The acting user may not do this."""


class AuthenticationFailed(PermissionDenied):
    """Unknown user, disabled user or wrong password (deliberately not saying which)."""


class ReviewError(GovernanceError):
    """A review decision that cannot be recorded."""


class RoleRequired(ReviewError, PermissionDenied):
    """The acting user lacks the role the action needs."""


class FourEyesViolation(ReviewError):
    """The reviewer requested the batch the job belongs to."""


class AlreadyDecided(ReviewError):
    """A job is decided once."""


class PolicyError(GovernanceError):
    """A policy file that cannot be loaded; the message names the field."""


class AuditChainError(GovernanceError):
    """The audit chain cannot be appended to (for instance, its head is unreadable)."""
