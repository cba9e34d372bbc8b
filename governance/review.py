"""Human review: a reviewer approves or rejects a flagged job, once, and never their own batch.

The decision stores a snapshot of what was judged (check scores, thresholds and policy version, output
hash, consent version), so it can be read later against exactly what the reviewer saw. Refusals (no
reviewer role, four eyes, decided already) are audited as `review.refused` via the unit of work.
`expire` rejects a job whose review window passed (`review.timed_out`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from governance import jobs
from governance.audit import record as audit
from governance.audit.actions import AuditAction
from governance.enums import JobState, Role, Verdict
from governance.errors import (
    AlreadyDecided,
    FourEyesViolation,
    InvalidTransition,
    Refusal,
    RoleRequired,
    ValidationFailed,
)
from governance.schema import Batch, Consent, Job, ReviewDecision, User
from governance.types import new_id, utcnow
from governance.users import get_user

VERDICT_STATE = {Verdict.approve: JobState.approved, Verdict.reject: JobState.rejected}
VERDICT_EVENT = {Verdict.approve: AuditAction.REVIEW_APPROVED, Verdict.reject: AuditAction.REVIEW_REJECTED}
DECIDED_STATES = frozenset(
    {JobState.approved, JobState.rejected, JobState.publishing, JobState.published, JobState.taken_down}
)


def _snapshot(session: Session, job: Job) -> dict[str, Any]:
    check = jobs.latest_check(session, job.id)
    consent = session.get(Consent, job.consent_id) if job.consent_id else None
    return {
        "job_state": job.state.value,
        "outcome": job.outcome.value if job.outcome else None,
        "check_scores": job.check_scores,
        "check_result_id": check.id if check else None,
        "reasons": check.reasons if check else [],
        "thresholds": check.thresholds if check else None,
        "policy_version": job.policy_version,
        "output": {"bucket": job.output_bucket, "key": job.output_key, "sha256": job.output_sha256},
        "model_sha256": job.model_sha256,
        "seed": job.seed,
        "consent": (
            {"id": consent.id, "lineage_id": consent.lineage_id, "version": consent.version}
            if consent
            else None
        ),
        "use": {"purpose": job.purpose, "channel": job.channel, "territory": job.territory},
    }


def get_decision(session: Session, job_id: str) -> ReviewDecision | None:
    """The review decision on a job, if one was made."""
    return session.scalar(select(ReviewDecision).where(ReviewDecision.job_id == job_id))


def _refusal(reviewer: User, job: Job, verdict: str, why: str) -> Refusal:
    return Refusal(
        action=AuditAction.REVIEW_REFUSED,
        actor=reviewer.email,
        subject_id=job.subject_id,
        job_id=job.id,
        resource_type="job",
        resource_id=job.id,
        details={"verdict": verdict, "why": why},
    )


def decide(
    session: Session, *, job_id: str, reviewer_id: str, verdict: Verdict | str, reason: str
) -> ReviewDecision:
    """Record a reviewer's verdict on a job awaiting review and move the job to approved or rejected.

    Refuses (and the unit of work audits the refusal) when the reviewer lacks the reviewer role,
    requested the job's batch, or the job was decided already. Audited as `review.approved` or
    `review.rejected`, plus the job's own `job.approved`/`job.rejected`, in the same transaction.
    """
    try:
        chosen = Verdict(verdict)
    except ValueError:
        raise ValidationFailed(f"unknown verdict {verdict!r} (allowed: approve, reject)") from None
    job = jobs.get_job(session, job_id, for_update=True)
    reviewer = get_user(session, reviewer_id)
    if not reviewer.has_role(Role.reviewer):
        why = "is disabled" if not reviewer.active else "lacks the reviewer role"
        raise RoleRequired(
            f"user {reviewer.email} {why}: cannot review job {job.id}",
            refusal=_refusal(reviewer, job, chosen.value, "role"),
        )
    existing = get_decision(session, job.id)
    if existing is not None:
        raise AlreadyDecided(
            f"job {job.id} was already decided: {existing.verdict.value} at {audit.format_time(existing.decided_at)}",
            refusal=_refusal(reviewer, job, chosen.value, "already decided"),
        )
    if job.state in DECIDED_STATES:
        raise AlreadyDecided(
            f"job {job.id} was already decided by policy: it is {job.state.value}",
            refusal=_refusal(reviewer, job, chosen.value, "already decided"),
        )
    batch = session.get(Batch, job.batch_id)
    if batch is not None and batch.requested_by == reviewer.id:
        raise FourEyesViolation(
            f"user {reviewer.email} requested batch {batch.id}: cannot review its job {job.id} (four eyes)",
            refusal=_refusal(reviewer, job, chosen.value, "four eyes"),
        )
    if job.state != JobState.awaiting_review:
        raise InvalidTransition(f"job {job.id} is {job.state.value}, not awaiting_review: nothing to decide")
    if not reason.strip():
        raise ValidationFailed(f"a review of job {job.id} needs a reason")
    decision = ReviewDecision(
        id=new_id(),
        job_id=job.id,
        reviewer_id=reviewer.id,
        verdict=chosen,
        reason=reason.strip(),
        decided_at=utcnow(),
        snapshot=_snapshot(session, job),
    )
    session.add(decision)
    try:
        session.flush()
    except IntegrityError:
        raise AlreadyDecided(f"job {job.id} was decided concurrently by another reviewer") from None
    audit.record(
        session,
        action=VERDICT_EVENT[chosen],
        actor=reviewer.email,
        subject_id=job.subject_id,
        job_id=job.id,
        resource_type="review_decision",
        resource_id=decision.id,
        details={"verdict": chosen.value, "reason": decision.reason, "snapshot": decision.snapshot},
    )
    jobs.transition(
        session,
        job,
        to=VERDICT_STATE[chosen],
        actor=reviewer.email,
        details={"review_decision_id": decision.id},
    )
    return decision


def expire(session: Session, *, job_id: str, actor: str) -> bool:
    """Reject a job still awaiting review once its window has passed; returns whether it did.

    Audited as `review.timed_out` (hours waited) followed by the job's `job.rejected`, in the caller's
    transaction; the job keeps the reason as its `last_error`. A job no longer awaiting review (decided
    meanwhile) is left as it is. Which jobs are overdue is the caller's to say (the review sweep).
    """
    job = jobs.get_job(session, job_id, for_update=True)
    if job.state != JobState.awaiting_review:
        return False
    hours = round((utcnow() - job.state_changed_at).total_seconds() / 3600, 2)
    reason = f"review of job {job_id} timed out after {hours:g} h"
    audit.record(
        session,
        action=AuditAction.REVIEW_TIMED_OUT,
        actor=actor,
        subject_id=job.subject_id,
        job_id=job.id,
        resource_type="job",
        resource_id=job.id,
        details={"waited_hours": hours},
    )
    jobs.transition(
        session,
        job,
        to=JobState.rejected,
        actor=actor,
        details={"reason": reason},
        changes={"last_error": reason},
    )
    return True
