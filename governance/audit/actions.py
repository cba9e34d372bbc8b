"""The audit vocabulary: every action an event may record, one closed list.

An event's action says what *happened*, in the past tense, as `<resource>.<past participle>`
(`consent.granted`, `publication.taken_down`). The name of an operation someone *attempted* is another
thing: `governance.users.require_role(action=...)` takes that (`consent.grant`, `publication.takedown`),
imperative, and it is kept only in the `details.attempted` of an `access.denied` event, never as an
event's action. See docs/contracts.md ("Audit vocabulary").

The values are the strings stored in `audit_events.action` and covered by each event's hash
(governance.audit.chain): a value, once written, is never renamed; a new meaning gets a new member.
`publish.*` is a job's delivery attempt (queued, gave up); `publication.*` is the publication record
(created, taken down, downloaded, an unrecorded upload removed).
"""

from __future__ import annotations

import re
from enum import StrEnum

from governance.enums import JobState, ModelStatus

# The shape of every value: dotted lower-case words (checked when this module is imported).
ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class AuditAction(StrEnum):
    """What an audit event records; compares equal to the stored string (`AuditAction.X == "x.y"`)."""

    ACCESS_DENIED = "access.denied"  # a role check refused someone (details.attempted: the operation)
    ACCESS_READ = "access.read"  # personal data was read (details.what)
    ASSET_REGISTERED = "asset.registered"
    AUDIT_EXPORTED = "audit.exported"
    AUDIT_VERIFIED = "audit.verified"  # a walk of the chain found it whole
    AUDIT_VERIFY_FAILED = "audit.verify_failed"  # a walk of the chain found it broken
    AUTH_SIGNED_IN = "auth.signed_in"
    AUTH_SIGN_IN_FAILED = "auth.sign_in_failed"
    BATCH_CREATED = "batch.created"
    CONSENT_GRANTED = "consent.granted"
    CONSENT_AMENDED = "consent.amended"
    CONSENT_REVOKED = "consent.revoked"
    CONSENT_VERIFIED = "consent.verified"  # a job's use was found covered by a consent in force
    DB_UPGRADED = "db.upgraded"
    # One per job state (`job_event`), written by `governance.jobs.transition`.
    JOB_SUBMITTED = "job.submitted"
    JOB_RENDERING = "job.rendering"
    JOB_RENDERED = "job.rendered"
    JOB_AWAITING_REVIEW = "job.awaiting_review"
    JOB_APPROVED = "job.approved"
    JOB_REJECTED = "job.rejected"
    JOB_PUBLISHING = "job.publishing"
    JOB_PUBLISHED = "job.published"
    JOB_TAKEN_DOWN = "job.taken_down"
    JOB_REFUSED = "job.refused"
    JOB_FAILED = "job.failed"
    JOB_RECLAIMED = "job.reclaimed"  # a crashed run's job taken over (the state is unchanged)
    LIKENESS_CHECKED = "likeness.checked"  # the portrait was compared with the subject's reference
    # One per model status (`model_event`), plus a refused render.
    MODEL_REGISTERED = "model.registered"
    MODEL_ACTIVE = "model.active"
    MODEL_RETIRED = "model.retired"
    MODEL_CONSENT_WITHDRAWN = "model.consent_withdrawn"
    MODEL_REFUSED = "model.refused"
    PUBLICATION_CREATED = "publication.created"
    PUBLICATION_TAKEN_DOWN = "publication.taken_down"
    PUBLICATION_DOWNLOADED = "publication.downloaded"
    PUBLICATION_ORPHAN_REMOVED = "publication.orphan_removed"
    PUBLISH_QUEUED = "publish.queued"
    PUBLISH_ATTEMPT_FAILED = "publish.attempt_failed"
    RETENTION_OUTPUT_DELETED = "retention.output_deleted"
    RETENTION_INPUT_DELETED = "retention.input_deleted"
    REVIEW_APPROVED = "review.approved"
    REVIEW_REJECTED = "review.rejected"
    REVIEW_REFUSED = "review.refused"
    REVIEW_TIMED_OUT = "review.timed_out"
    SUBJECT_CREATED = "subject.created"
    SUBJECT_REFERENCE_ADDED = "subject.reference_added"
    TRAINING_REFUSED = "training.refused"
    USER_CREATED = "user.created"
    USER_ROLES_CHANGED = "user.roles_changed"
    USER_PASSWORD_SET = "user.password_set"
    USER_DISABLED = "user.disabled"


_MALFORMED = [member.value for member in AuditAction if not ACTION_PATTERN.match(member.value)]
if _MALFORMED:  # pragma: no cover - a mistake in the list above, caught on import
    raise ValueError(f"audit actions not dotted lower-case: {', '.join(_MALFORMED)}")


def job_event(state: JobState | str) -> AuditAction:
    """The event a job's move into `state` is recorded as (`job.<state>`)."""
    return AuditAction(f"job.{JobState(state).value}")


def model_event(status: ModelStatus | str) -> AuditAction:
    """The event a registered model's move into `status` is recorded as (`model.<status>`)."""
    return AuditAction(f"model.{ModelStatus(status).value}")
