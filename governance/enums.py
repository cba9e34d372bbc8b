"""The closed vocabularies of governance: roles, job states, policy outcomes and review verdicts.

StrEnums so that they compare equal to the strings stored in the database and written to the audit log.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a user may do. A user holds one or more roles."""

    compliance = "compliance"  # records subjects and consents
    operator = "operator"  # submits batches, runs flows
    reviewer = "reviewer"  # approves or rejects flagged outputs
    auditor = "auditor"  # reads and exports the audit log
    admin = "admin"  # manages users


class JobState(StrEnum):
    """Where a job is in its life; `governance.jobs.ALLOWED_TRANSITIONS` says how it may move."""

    submitted = "submitted"
    rendering = "rendering"
    rendered = "rendered"
    awaiting_review = "awaiting_review"
    approved = "approved"
    rejected = "rejected"
    publishing = "publishing"
    published = "published"
    taken_down = "taken_down"
    refused = "refused"  # a governance refusal (consent, likeness binding)
    failed = "failed"  # a technical failure


class Outcome(StrEnum):
    """What the policy makes of a job's check scores."""

    auto_approve = "auto_approve"
    needs_review = "needs_review"
    reject = "reject"


class Verdict(StrEnum):
    """A reviewer's decision."""

    approve = "approve"
    reject = "reject"


class AssetKind(StrEnum):
    """What a registered object is for."""

    portrait = "portrait"
    driving_video = "driving_video"
    reference = "reference"
    evidence = "evidence"
    output = "output"
    training_clip = "training_clip"  # prepared frames a model was trained on (see governance.models_registry)


class ModelStatus(StrEnum):
    """Whether a registered model may render: only `active` ones may."""

    active = "active"
    retired = "retired"  # withdrawn from use by a person (a better version, a defect ...)
    consent_withdrawn = "consent_withdrawn"  # a consent its training data depends on was revoked
