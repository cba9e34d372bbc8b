"""The job state machine: one table of allowed transitions, checked in one place, audited atomically.

Every state change goes through `transition`, which writes a `job.<state>` audit event in the same
transaction: both commit or neither does. `row_version` (an optimistic lock) stops two workers from
both moving one job; on PostgreSQL `get_job(..., for_update=True)` also locks the row.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from governance.audit import record as audit
from governance.audit.actions import AuditAction, job_event
from governance.enums import JobState, Outcome
from governance.errors import InvalidTransition, NotFound, ValidationFailed
from governance.policy import CheckScores, PolicyDecision
from governance.schema import CheckResult, Consent, Job
from governance.types import new_id, utcnow

S = JobState
_FINAL_EXITS = frozenset({S.refused, S.failed})
ALLOWED_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    S.submitted: frozenset({S.rendering}) | _FINAL_EXITS,
    S.rendering: frozenset({S.rendered}) | _FINAL_EXITS,
    S.rendered: frozenset({S.awaiting_review, S.approved, S.rejected}) | _FINAL_EXITS,
    S.awaiting_review: frozenset({S.approved, S.rejected}) | _FINAL_EXITS,
    S.approved: frozenset({S.publishing}) | _FINAL_EXITS,
    S.publishing: frozenset({S.published}) | _FINAL_EXITS,
    S.published: frozenset({S.taken_down}),  # once out, the only way back is a takedown
    S.rejected: frozenset(),
    S.taken_down: frozenset(),
    S.refused: frozenset(),
    S.failed: frozenset(),
}
TERMINAL_STATES = frozenset(state for state, targets in ALLOWED_TRANSITIONS.items() if not targets)
RECLAIMABLE_STATES = frozenset({S.rendering, S.publishing})
OUTCOME_STATE = {
    Outcome.auto_approve: S.approved,
    Outcome.needs_review: S.awaiting_review,
    Outcome.reject: S.rejected,
}
# Columns a transition may set together with the state (so they change atomically with it).
SETTABLE = frozenset(
    {
        "consent_id",
        "seed",
        "model_sha256",
        "inference_mode",
        "output_bucket",
        "output_key",
        "output_sha256",
        "flow_run_id",
        "last_error",
    }
)


def get_job(session: Session, job_id: str, *, for_update: bool = False) -> Job:
    """The job with this id (row-locked on PostgreSQL when `for_update`), or NotFound."""
    job = session.get(Job, job_id, with_for_update=for_update or None)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def jobs_in_state(
    session: Session,
    *states: JobState,
    batch_id: str | None = None,
    changed_before: datetime | None = None,
    limit: int | None = None,
) -> list[Job]:
    """Jobs in any of `states` (optionally of one batch, or unchanged since a moment), oldest first.

    The one query for "which jobs are where": the review queue, the review sweep, the batch run and the
    publish sweep all ask it, so they agree on the order and the filters.
    """
    statement = select(Job).where(Job.state.in_(states)).order_by(Job.created_at, Job.id)
    if batch_id is not None:
        statement = statement.where(Job.batch_id == batch_id)
    if changed_before is not None:
        statement = statement.where(Job.state_changed_at < changed_before)
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement))


def can_transition(current: JobState, to: JobState) -> bool:
    """Whether `ALLOWED_TRANSITIONS` lets a job move from `current` to `to`."""
    return JobState(to) in ALLOWED_TRANSITIONS[JobState(current)]


def _flush_or_conflict(session: Session, job: Job) -> None:
    job_id = job.id  # read before flushing: a failed flush expires the object
    try:
        session.flush()
    except StaleDataError:
        raise InvalidTransition(f"job {job_id} was changed by another worker: reload it") from None


def transition(
    session: Session,
    job: Job,
    *,
    to: JobState | str,
    actor: str,
    details: dict[str, Any] | None = None,
    changes: Mapping[str, Any] | None = None,
) -> Job:
    """Move `job` to `to` if allowed, apply `changes` (see SETTABLE), and audit `job.<to>`, all in one flush."""
    try:
        target = JobState(to)
    except ValueError:
        raise InvalidTransition(f"job {job.id}: unknown state {to!r}") from None
    current = JobState(job.state)
    if target not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(f"job {job.id}: {current.value} -> {target.value} is not allowed")
    unknown = set(changes or {}) - SETTABLE
    if unknown:
        raise ValidationFailed(f"job {job.id}: a transition cannot set {', '.join(sorted(unknown))}")
    for name, value in (changes or {}).items():
        setattr(job, name, value)
    job.state = target
    job.state_changed_at = utcnow()
    _flush_or_conflict(session, job)
    audit.record(
        session,
        action=job_event(target),
        actor=actor,
        subject_id=job.subject_id,
        job_id=job.id,
        resource_type="job",
        resource_id=job.id,
        details={"from": current.value, "to": target.value, **dict(changes or {}), **(details or {})},
    )
    return job


def claim(
    session: Session, job: Job, *, to: JobState | str, flow_run_id: str, actor: str, **changes: Any
) -> Job:
    """Start work on a job (`submitted -> rendering`, `approved -> publishing`) on behalf of a flow run."""
    target = JobState(to)
    if target not in RECLAIMABLE_STATES:
        raise InvalidTransition(
            f"job {job.id}: claim moves only into rendering or publishing, not {target.value}"
        )
    if not can_transition(job.state, target):  # checked before touching `attempts`
        raise InvalidTransition(f"job {job.id}: {JobState(job.state).value} -> {target.value} is not allowed")
    job.attempts += 1
    return transition(
        session,
        job,
        to=target,
        actor=actor,
        details={"attempt": job.attempts},
        changes={"flow_run_id": flow_run_id, **changes},
    )


def reclaim(
    session: Session,
    *,
    job_id: str,
    flow_run_id: str,
    actor: str,
    expected_flow_run_id: str | None = None,
) -> Job:
    """Take over a job left in `rendering`/`publishing` by a crashed run (audited as `job.reclaimed`).

    With `expected_flow_run_id`, only a job still held by that (dead) run is taken over, so two new
    runs cannot both reclaim it.
    """
    job = get_job(session, job_id, for_update=True)
    if job.state not in RECLAIMABLE_STATES:
        raise InvalidTransition(
            f"job {job.id} is {job.state.value}: only rendering or publishing jobs can be reclaimed"
        )
    if expected_flow_run_id is not None and job.flow_run_id != expected_flow_run_id:
        raise InvalidTransition(
            f"job {job.id} is held by run {job.flow_run_id}, not {expected_flow_run_id}: not reclaimed"
        )
    previous = job.flow_run_id
    job.flow_run_id = flow_run_id
    job.attempts += 1
    _flush_or_conflict(session, job)
    audit.record(
        session,
        action=AuditAction.JOB_RECLAIMED,
        actor=actor,
        subject_id=job.subject_id,
        job_id=job.id,
        resource_type="job",
        resource_id=job.id,
        details={
            "state": job.state.value,
            "previous_flow_run_id": previous,
            "flow_run_id": flow_run_id,
            "attempt": job.attempts,
        },
    )
    return job


def record_render(
    session: Session,
    job: Job,
    *,
    actor: str,
    output_bucket: str,
    output_key: str,
    output_sha256: str,
    seed: int,
    model_sha256: str,
    inference_mode: str,
    details: dict[str, Any] | None = None,
) -> Job:
    """`rendering -> rendered`, recording where the output lies and how it was made."""
    return transition(
        session,
        job,
        to=S.rendered,
        actor=actor,
        details=details,
        changes={
            "output_bucket": output_bucket,
            "output_key": output_key,
            "output_sha256": output_sha256,
            "seed": seed,
            "model_sha256": model_sha256,
            "inference_mode": inference_mode,
        },
    )


def record_consent(session: Session, job: Job, *, consent: Consent, actor: str) -> Job:
    """Put the consent found in force on the job, audited as `consent.verified` (the state is unchanged).

    The consent must be the job's subject's: a consent of anyone else is refused, never recorded.
    """
    if consent.subject_id != job.subject_id:
        raise ValidationFailed(
            f"job {job.id}: consent {consent.id} is subject {consent.subject_id}'s, not {job.subject_id}'s"
        )
    job.consent_id = consent.id
    audit.record(
        session,
        action=AuditAction.CONSENT_VERIFIED,
        actor=actor,
        subject_id=job.subject_id,
        job_id=job.id,
        resource_type="consent",
        resource_id=consent.id,
        details={
            "lineage_id": consent.lineage_id,
            "version": consent.version,
            "state": JobState(job.state).value,
            "use": {"purpose": job.purpose, "channel": job.channel, "territory": job.territory},
        },
    )
    return job


def record_binding(
    session: Session, job: Job, *, actor: str, distance: float, details: dict[str, Any] | None = None
) -> Job:
    """Keep the likeness binding distance (portrait vs. the subject's reference) among the job's scores.

    Audited as `likeness.checked` with `details` (what the comparison used); the state is unchanged:
    whether the distance refuses the job is the caller's (the policy's bound) to say.
    """
    job.check_scores = {**(job.check_scores or {}), "binding_distance": distance}
    audit.record(
        session,
        action=AuditAction.LIKENESS_CHECKED,
        actor=actor,
        subject_id=job.subject_id,
        job_id=job.id,
        resource_type="job",
        resource_id=job.id,
        details=details,
    )
    return job


def record_checks(
    session: Session,
    job: Job,
    *,
    actor: str,
    scores: CheckScores,
    decision: PolicyDecision,
    details: dict[str, Any] | None = None,
) -> CheckResult:
    """Store the check scores and the policy's decision, and move the job to where the outcome sends it.

    `rendered -> approved | awaiting_review | rejected`, with the policy version on the job and the row;
    a rejected job keeps the policy's reasons as its `last_error`.
    """
    result = CheckResult(
        id=new_id(),
        job_id=job.id,
        scores=scores.model_dump(mode="json", exclude_none=True),
        thresholds=decision.thresholds,
        policy_version=decision.policy_version,
        outcome=decision.outcome,
        reasons=list(decision.reasons),
        details=details or {},
    )
    session.add(result)
    job.check_scores = result.scores
    job.policy_version = decision.policy_version
    job.outcome = decision.outcome
    if decision.outcome == Outcome.reject:
        job.last_error = "rejected by policy: " + "; ".join(decision.reasons)
    transition(
        session,
        job,
        to=OUTCOME_STATE[decision.outcome],
        actor=actor,
        details={
            "outcome": decision.outcome.value,
            "policy_version": decision.policy_version,
            "reasons": list(decision.reasons),
            "check_result_id": result.id,
        },
    )
    return result


def latest_check(session: Session, job_id: str) -> CheckResult | None:
    """The newest check result of a job, if any."""
    statement = (
        select(CheckResult).where(CheckResult.job_id == job_id).order_by(CheckResult.created_at.desc())
    )
    return session.scalars(statement.limit(1)).first()


def fail(session: Session, job: Job, *, actor: str, error: str, details: dict[str, Any] | None = None) -> Job:
    """A technical failure: `-> failed`, keeping the one-line error."""
    return transition(
        session, job, to=S.failed, actor=actor, details=details, changes={"last_error": error[:2000]}
    )


def refuse(
    session: Session, job: Job, *, actor: str, reason: str, details: dict[str, Any] | None = None
) -> Job:
    """A governance refusal (consent, likeness binding): `-> refused`, keeping the reason."""
    return transition(
        session, job, to=S.refused, actor=actor, details=details, changes={"last_error": reason[:2000]}
    )


def release_claim(session: Session, *, job_id: str, flow_run_id: str) -> bool:
    """Let go of a job that flow run `flow_run_id` holds but has given up on (its caller audits the failed
    attempt in the same transaction), so that a retry claims it at once instead of waiting for the failed
    run to finish. Only that run's own claim on a `rendering`/`publishing` job is cleared: a job another
    run has taken over, or one already final, is left as it is. Returns whether the claim was released.
    """
    job = get_job(session, job_id, for_update=True)
    if job.state not in RECLAIMABLE_STATES or job.flow_run_id != flow_run_id:
        return False
    job.flow_run_id = None
    _flush_or_conflict(session, job)
    return True
