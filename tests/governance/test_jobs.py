"""The job state machine: one transition table, illegal moves refused, every move audited atomically."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from governance import jobs
from governance.enums import JobState, Outcome
from governance.errors import InvalidTransition, NotFound, ValidationFailed
from governance.policy import load_policy
from governance.schema import AuditEvent, CheckResult, Job
from governance.uow import unit_of_work
from tests.governance.helpers import World, audit_actions, count, good_scores, job_state

S = JobState


def test_table_covers_every_state_and_final_states_have_no_exit() -> None:
    assert set(jobs.ALLOWED_TRANSITIONS) == set(JobState)
    assert jobs.TERMINAL_STATES == {S.rejected, S.taken_down, S.refused, S.failed}
    for state in set(JobState) - jobs.TERMINAL_STATES - {S.published}:
        assert {S.refused, S.failed} <= jobs.ALLOWED_TRANSITIONS[state], state
    assert jobs.ALLOWED_TRANSITIONS[S.published] == {S.taken_down}
    assert jobs.can_transition(S.awaiting_review, S.approved)
    assert not jobs.can_transition(S.submitted, S.published)


def test_happy_path_audits_each_state(world: World) -> None:
    job_id = world.batch_job()
    with unit_of_work(world.sf) as session:
        job = jobs.get_job(session, job_id)
        jobs.claim(session, job, to=S.rendering, flow_run_id="run-1", actor="system:render")
        jobs.record_render(
            session,
            job,
            actor="system:render",
            output_bucket="quarantine",
            output_key="o.mp4",
            output_sha256="c" * 64,
            seed=1,
            model_sha256="d" * 64,
            inference_mode="exact",
        )
        result = jobs.record_checks(
            session,
            job,
            actor="system:render",
            scores=good_scores(),
            decision=load_policy().evaluate(good_scores()),
        )
    assert job_state(world.sf, job_id) == S.approved
    with world.sf() as session:
        job = jobs.get_job(session, job_id)
        assert (job.attempts, job.flow_run_id, job.output_sha256, job.outcome) == (
            1,
            "run-1",
            "c" * 64,
            Outcome.auto_approve,
        )
        assert job.policy_version == "default@v2" and job.check_scores == good_scores().model_dump(
            mode="json"
        )
        assert session.get_one(CheckResult, result.id).outcome == Outcome.auto_approve
        events = list(
            session.scalars(select(AuditEvent).where(AuditEvent.job_id == job_id).order_by(AuditEvent.seq))
        )
    assert [e.action for e in events] == ["job.submitted", "job.rendering", "job.rendered", "job.approved"]
    assert events[2].details["output_sha256"] == "c" * 64 and events[3].details["outcome"] == "auto_approve"


@pytest.mark.parametrize("target", [S.published, S.approved, S.awaiting_review, S.taken_down, "exploded"])
def test_illegal_transition_raises_and_changes_nothing(world: World, target: str) -> None:
    job_id = world.batch_job()
    before = count(world.sf, AuditEvent)
    with pytest.raises(
        InvalidTransition, match=f"job {job_id}: (submitted -> {target} is not allowed|unknown state)"
    ):
        with unit_of_work(world.sf) as session:
            jobs.transition(session, jobs.get_job(session, job_id), to=target, actor="system:test")
    assert job_state(world.sf, job_id) == S.submitted
    assert count(world.sf, AuditEvent) == before


def test_final_states_cannot_move(world: World) -> None:
    job_id = world.batch_job()
    with unit_of_work(world.sf) as session:
        jobs.refuse(session, jobs.get_job(session, job_id), actor="system:render", reason="consent expired")
    with pytest.raises(InvalidTransition, match="refused -> rendering is not allowed"):
        with unit_of_work(world.sf) as session:
            jobs.transition(session, jobs.get_job(session, job_id), to=S.rendering, actor="system:test")
    with world.sf() as session:
        assert jobs.get_job(session, job_id).last_error == "consent expired"
    assert audit_actions(world.sf)[-1] == "job.refused"


def test_transition_and_audit_commit_together_or_not_at_all(world: World) -> None:
    job_id = world.batch_job()
    before = count(world.sf, AuditEvent)
    with pytest.raises(RuntimeError, match="crash"), unit_of_work(world.sf) as session:
        jobs.transition(session, jobs.get_job(session, job_id), to=S.rendering, actor="system:test")
        raise RuntimeError("crash after the transition, before commit")
    assert job_state(world.sf, job_id) == S.submitted
    assert count(world.sf, AuditEvent) == before


def test_transition_refuses_unknown_column_changes(world: World) -> None:
    job_id = world.batch_job()
    with pytest.raises(ValidationFailed, match="a transition cannot set state_changed_at, subject_id"):
        with unit_of_work(world.sf) as session:
            jobs.transition(
                session,
                jobs.get_job(session, job_id),
                to=S.rendering,
                actor="system:test",
                changes={"subject_id": "x", "state_changed_at": None},
            )
    assert job_state(world.sf, job_id) == S.submitted


def test_two_workers_cannot_both_move_a_job(world: World) -> None:
    job_id = world.batch_job()
    first = world.sf()
    stale = jobs.get_job(first, job_id)
    first.commit()  # end the read transaction, keep the (now stale) object
    with unit_of_work(world.sf) as session:
        jobs.claim(
            session, jobs.get_job(session, job_id), to=S.rendering, flow_run_id="run-A", actor="system:a"
        )
    with pytest.raises(InvalidTransition, match=f"job {job_id} was changed by another worker"):
        with first.begin():
            jobs.claim(first, stale, to=S.rendering, flow_run_id="run-B", actor="system:b")
    first.close()
    with world.sf() as session:
        job = jobs.get_job(session, job_id)
        assert (job.state, job.flow_run_id, job.attempts) == (S.rendering, "run-A", 1)
    assert audit_actions(world.sf).count("job.rendering") == 1


def test_reclaim_takes_over_a_crashed_run(world: World) -> None:
    job_id = world.batch_job()
    with unit_of_work(world.sf) as session:
        jobs.claim(
            session, jobs.get_job(session, job_id), to=S.rendering, flow_run_id="dead-run", actor="system:a"
        )
    with pytest.raises(InvalidTransition, match="held by run dead-run, not other-run: not reclaimed"):
        with unit_of_work(world.sf) as session:
            jobs.reclaim(
                session,
                job_id=job_id,
                flow_run_id="new-run",
                actor="system:b",
                expected_flow_run_id="other-run",
            )
    with unit_of_work(world.sf) as session:
        job = jobs.reclaim(
            session, job_id=job_id, flow_run_id="new-run", actor="system:b", expected_flow_run_id="dead-run"
        )
    assert (job.state, job.flow_run_id, job.attempts) == (S.rendering, "new-run", 2)
    with world.sf() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "job.reclaimed")).one()
    assert event.details["previous_flow_run_id"] == "dead-run" and event.job_id == job_id
    other = world.batch_job()
    with pytest.raises(InvalidTransition, match=f"job {other} is submitted: only rendering or publishing"):
        with unit_of_work(world.sf) as session:
            jobs.reclaim(session, job_id=other, flow_run_id="x", actor="system:b")
    with pytest.raises(NotFound, match="job nope not found"), unit_of_work(world.sf) as session:
        jobs.reclaim(session, job_id="nope", flow_run_id="x", actor="system:b")


def test_policy_outcomes_route_the_job(world: World) -> None:
    routes = {}
    for label, scores in {
        "review": good_scores(colour_drift=7.0),
        "reject": good_scores(fps_ok=False),
    }.items():
        job_id = world.batch_job()
        with unit_of_work(world.sf) as session:
            job = jobs.get_job(session, job_id)
            jobs.claim(session, job, to=S.rendering, flow_run_id="r", actor="system:t")
            jobs.record_render(
                session,
                job,
                actor="system:t",
                output_bucket="q",
                output_key="k",
                output_sha256="e" * 64,
                seed=3,
                model_sha256="f" * 64,
                inference_mode="fast",
            )
            jobs.record_checks(
                session, job, actor="system:t", scores=scores, decision=load_policy().evaluate(scores)
            )
        routes[label] = job_state(world.sf, job_id)
    assert routes == {"review": S.awaiting_review, "reject": S.rejected}
    assert count(world.sf, Job) == 2


def test_a_refused_claim_leaves_the_job_untouched_in_the_session(world: World) -> None:
    job_id = world.batch_job()
    with unit_of_work(world.sf) as session:
        job = jobs.get_job(session, job_id)
        with pytest.raises(InvalidTransition, match=f"job {job_id}: submitted -> publishing is not allowed"):
            jobs.claim(session, job, to=S.publishing, flow_run_id="r", actor="system:t")
        assert (job.attempts, job.flow_run_id) == (0, None)
    with world.sf() as session:
        assert jobs.get_job(session, job_id).attempts == 0
