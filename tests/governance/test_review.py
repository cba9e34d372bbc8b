"""Review: reviewer role, four eyes, decided once, and a snapshot of what was judged."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from governance import review
from governance.enums import JobState, Verdict
from governance.errors import (
    AlreadyDecided,
    FourEyesViolation,
    InvalidTransition,
    NotFound,
    RoleRequired,
    ValidationFailed,
)
from governance.schema import AuditEvent, ReviewDecision
from governance.uow import unit_of_work
from tests.governance.helpers import World, count, job_state


def decide(
    world: World, job_id: str, reviewer: str, verdict: str = "approve", reason: str = "looks right"
) -> ReviewDecision:
    with unit_of_work(world.sf) as session:
        return review.decide(session, job_id=job_id, reviewer_id=reviewer, verdict=verdict, reason=reason)


def last_event(world: World) -> AuditEvent:
    with world.sf() as session:
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert event is not None
    return event


def test_approve_records_decision_snapshot_and_moves_the_job(world: World) -> None:
    job_id = world.job_awaiting_review()
    decision = decide(world, job_id, world.reviewer)
    assert (decision.verdict, decision.reason) == (Verdict.approve, "looks right")
    snap = decision.snapshot
    assert snap["check_scores"]["colour_drift"] == 7.0
    assert snap["policy_version"] == "default@v2" and snap["thresholds"]["digest"]
    assert snap["output"]["sha256"] == "a" * 64 and snap["model_sha256"] == "b" * 64
    assert snap["consent"]["version"] == 1 and snap["outcome"] == "needs_review"
    assert "colour_drift 7 > review bound 6" in snap["reasons"]
    assert job_state(world.sf, job_id) == JobState.approved
    with world.sf() as session:
        actions = list(
            session.scalars(
                select(AuditEvent.action).where(AuditEvent.job_id == job_id).order_by(AuditEvent.seq)
            )
        )
    assert actions[-2:] == ["review.approved", "job.approved"]


def test_reject_moves_the_job_to_rejected(world: World) -> None:
    job_id = world.job_awaiting_review()
    decision = decide(
        world, job_id, world.reviewer_operator, verdict="reject", reason="mouth artifacts at 3s"
    )
    assert job_state(world.sf, job_id) == JobState.rejected
    with world.sf() as session:
        events = list(
            session.scalars(select(AuditEvent).where(AuditEvent.job_id == job_id).order_by(AuditEvent.seq))
        )
    assert [e.action for e in events[-2:]] == ["review.rejected", "job.rejected"]
    assert events[-2].resource_id == decision.id and events[-2].details["reason"] == "mouth artifacts at 3s"


def test_reviewing_ones_own_batch_is_refused_and_audited(world: World) -> None:
    job_id = world.job_awaiting_review(requested_by=world.reviewer_operator)
    before = count(world.sf, AuditEvent)
    with pytest.raises(
        FourEyesViolation,
        match=f"user reviewer_operator@example.org requested batch .*: cannot review its job {job_id} \\(four eyes\\)",
    ):
        decide(world, job_id, world.reviewer_operator)
    assert job_state(world.sf, job_id) == JobState.awaiting_review
    assert count(world.sf, ReviewDecision) == 0
    assert count(world.sf, AuditEvent) == before + 1
    event = last_event(world)
    assert (event.action, event.actor, event.job_id, event.details["why"]) == (
        "review.refused",
        "reviewer_operator@example.org",
        job_id,
        "four eyes",
    )


def test_a_job_is_decided_once(world: World) -> None:
    job_id = world.job_awaiting_review()
    decide(world, job_id, world.reviewer)
    before = count(world.sf, AuditEvent)
    with pytest.raises(AlreadyDecided, match=f"job {job_id} was already decided: approve at"):
        decide(world, job_id, world.reviewer_operator, verdict="reject")
    assert job_state(world.sf, job_id) == JobState.approved
    assert count(world.sf, ReviewDecision) == 1
    assert count(world.sf, AuditEvent) == before + 1
    assert (last_event(world).action, last_event(world).details["why"]) == (
        "review.refused",
        "already decided",
    )


def test_reviewer_role_is_required(world: World) -> None:
    job_id = world.job_awaiting_review()
    with pytest.raises(
        RoleRequired, match=f"user compliance@example.org lacks the reviewer role: cannot review job {job_id}"
    ):
        decide(world, job_id, world.compliance)
    assert job_state(world.sf, job_id) == JobState.awaiting_review
    assert count(world.sf, ReviewDecision) == 0
    assert last_event(world).action == "review.refused"


def test_other_refusals(world: World) -> None:
    job_id = world.job_awaiting_review()
    fresh = world.batch_job()
    before = count(world.sf, AuditEvent)
    with pytest.raises(NotFound, match="job nope not found"):
        decide(world, "nope", world.reviewer)
    with pytest.raises(NotFound, match="user ghost not found"):
        decide(world, job_id, "ghost")
    with pytest.raises(ValidationFailed, match="unknown verdict 'maybe'"):
        decide(world, job_id, world.reviewer, verdict="maybe")
    with pytest.raises(ValidationFailed, match=f"a review of job {job_id} needs a reason"):
        decide(world, job_id, world.reviewer, reason="  ")
    with pytest.raises(InvalidTransition, match=f"job {fresh} is submitted, not awaiting_review"):
        decide(world, fresh, world.reviewer)
    assert count(world.sf, AuditEvent) == before
    assert count(world.sf, ReviewDecision) == 0
    assert job_state(world.sf, job_id) == JobState.awaiting_review
