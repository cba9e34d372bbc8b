"""The standing `dead-run-sweep`: jobs held by runs whose heartbeat stopped are released, audited, and
finished by the next claim — without waiting for the six-hour clock or for the next batch to notice.

Real Prefect server (the project's local one, from the fixtures), real SQLite and SeaweedFS, the tiny
model. The holders are real Prefect flow runs in RUNNING state whose `likeness.heartbeat` label is as old
as a lost host leaves it (or fresh, for a live one): exactly what a killed process leaves behind.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from flows.batch.flow import nightly_batch
from flows.jobs.tasks import run_is_alive
from flows.publish.flow import publish_approved
from flows.recovery.flow import dead_run_sweep
from flows.recovery.steps import release_dead_holders
from flows.runtime.concurrency import ensure_gpu_limit
from governance import jobs, review, users
from governance.enums import JobState
from governance.uow import unit_of_work
from tests.flows.conftest import REVIEWER, REVIEWER_OPERATOR, FlowWorld
from tests.flows.lost_host import flow_run, hold, holder_run

TIMEOUT_S = 5.0


def _short_heartbeat(world: FlowWorld) -> None:
    world.rt.settings = world.rt.settings.model_copy(
        update={"run_heartbeat_seconds": 1.0, "run_heartbeat_timeout_seconds": TIMEOUT_S}
    )
    assert world.rt.settings.reclaim_after_minutes == 360  # the long clock plays no part here


def test_release_follows_the_holders_heartbeat(flow_world: FlowWorld) -> None:
    """Only the holder whose heartbeat stopped loses its job; a beating holder keeps it."""
    world = flow_world
    _short_heartbeat(world)
    world.add_subject("S-1")
    world.grant("S-1")
    batch_id = world.submit([{"subject": "S-1", "seed": seed} for seed in range(3)])
    dead_job, live_job, crashed_job = world.job_ids(batch_id)
    now = datetime.now(UTC)
    dead = holder_run(last_beat=now - timedelta(seconds=60))
    live = holder_run(last_beat=now)
    crashed = holder_run(last_beat=now, state="CRASHED")
    for job_id, run_id in ((dead_job, dead), (live_job, live), (crashed_job, crashed)):
        hold(world, job_id, run_id)

    released = release_dead_holders(world.rt, holder_alive=run_is_alive)

    assert sorted((r.job_id, r.state, r.dead_run_id) for r in released) == sorted(
        [(dead_job, JobState.rendering, dead), (crashed_job, JobState.rendering, crashed)]
    )
    assert world.job(dead_job).flow_run_id is None and world.job(crashed_job).flow_run_id is None
    assert world.job(live_job).flow_run_id == live  # still beating: left alone, nothing audited
    assert "job.released" not in world.actions(live_job)
    for job_id in (dead_job, crashed_job):
        assert world.state(job_id) == JobState.rendering  # state kept: the next claim resumes it
        assert world.actions(job_id)[-1] == "job.released"
    state = flow_run(dead).state
    assert state.is_crashed() and "no heartbeat" in (state.message or "")  # Prefect was told
    assert flow_run(live).state.is_running()
    # A second sweep finds nothing more to do.
    assert release_dead_holders(world.rt, holder_alive=run_is_alive) == []


def test_a_release_loses_to_a_run_that_took_the_job_over_first(flow_world: FlowWorld) -> None:
    world = flow_world
    world.add_subject("S-1")
    world.grant("S-1")
    [job_id] = world.job_ids(world.submit([{"subject": "S-1"}]))
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    hold(world, job_id, old)

    def taken_over_meanwhile(run_id: str) -> bool:  # another run reclaims between check and release
        with unit_of_work(world.sessions) as session:
            jobs.reclaim(
                session, job_id=job_id, flow_run_id=new, actor="system:test", expected_flow_run_id=old
            )
        return False

    assert release_dead_holders(world.rt, holder_alive=taken_over_meanwhile) == []
    assert world.job(job_id).flow_run_id == new
    assert "job.released" not in world.actions(job_id)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_sweep_flow_frees_a_dead_render_and_a_dead_publish_and_each_finishes_once(
    flow_world: FlowWorld,
) -> None:
    world = flow_world
    _short_heartbeat(world)
    ensure_gpu_limit(1)
    world.add_subject("S-1")
    world.grant("S-1")
    batch_id = world.submit([{"subject": "S-1"}])
    [render_job_id] = world.job_ids(batch_id)
    [publish_job_id] = world.flagged_batch(["S-1"], requester=REVIEWER_OPERATOR)
    with unit_of_work(world.sessions) as session:
        reviewer = users.get_user_by_email(session, REVIEWER).id
        review.decide(session, job_id=publish_job_id, reviewer_id=reviewer, verdict="approve", reason="fine")
    stale = datetime.now(UTC) - timedelta(seconds=60)
    render_holder, publish_holder = holder_run(last_beat=stale), holder_run(last_beat=stale)
    hold(world, render_job_id, render_holder)
    hold(world, publish_job_id, publish_holder, to=JobState.publishing)

    done = dead_run_sweep()

    assert done == {
        render_job_id: "released: left to the next batch run",  # not a deployment: the next batch's
        publish_job_id: "released: left to publish-approved",  # no publish deployment configured
    }
    for run_id in (render_holder, publish_holder):
        assert flow_run(run_id).state.is_crashed()
    # The next claims take the jobs over at once (audited) and finish each exactly once.
    assert nightly_batch(batch_id=batch_id) == {render_job_id: "published"}
    assert publish_approved() == {publish_job_id: "published"}
    for job_id in (render_job_id, publish_job_id):
        actions = world.actions(job_id)
        assert actions.count("job.released") == 1 and actions.count("job.reclaimed") == 1, actions
        assert actions.index("job.released") < actions.index("job.reclaimed")
        assert actions.count("job.published") == 1 and world.publications(job_id) == 1
    assert dead_run_sweep() == {}  # nothing held any more
