"""`jobs.release_claim`: a run that gave up lets go of its job, so a retry claims it at once.

Only the run's own claim is released: a job another run took over, or one already final, stays as it is.
"""

from __future__ import annotations

import pytest

from governance import jobs
from governance.enums import JobState
from governance.errors import NotFound
from governance.uow import unit_of_work
from tests.governance.helpers import World

S = JobState


def _rendering(world: World, run_id: str) -> str:
    job_id = world.batch_job()
    with unit_of_work(world.sf) as session:
        jobs.claim(
            session, jobs.get_job(session, job_id), to=S.rendering, flow_run_id=run_id, actor="system:a"
        )
    return job_id


def test_the_holder_releases_its_claim_and_a_new_run_reclaims_without_waiting(world: World) -> None:
    job_id = _rendering(world, "failed-run")
    with unit_of_work(world.sf) as session:
        assert jobs.release_claim(session, job_id=job_id, flow_run_id="failed-run") is True
    with world.sf() as session:
        job = jobs.get_job(session, job_id)
        assert (job.state, job.flow_run_id, job.attempts) == (S.rendering, None, 1)
    with unit_of_work(world.sf) as session:  # what a retry's claim does with a job nobody holds
        job = jobs.reclaim(session, job_id=job_id, flow_run_id="retry-run", actor="system:b")
    assert (job.state, job.flow_run_id, job.attempts) == (S.rendering, "retry-run", 2)


def test_another_runs_claim_and_a_final_job_are_left_alone(world: World) -> None:
    job_id = _rendering(world, "live-run")
    with unit_of_work(world.sf) as session:
        assert jobs.release_claim(session, job_id=job_id, flow_run_id="failed-run") is False
    with world.sf() as session:
        assert jobs.get_job(session, job_id).flow_run_id == "live-run"

    with unit_of_work(world.sf) as session:
        jobs.fail(session, jobs.get_job(session, job_id), actor="system:a", error="broken input")
    with unit_of_work(world.sf) as session:
        assert jobs.release_claim(session, job_id=job_id, flow_run_id="live-run") is False
    with world.sf() as session:
        job = jobs.get_job(session, job_id)
        assert (job.state, job.flow_run_id) == (S.failed, "live-run")
    with pytest.raises(NotFound, match="job nope not found"), unit_of_work(world.sf) as session:
        jobs.release_claim(session, job_id="nope", flow_run_id="x")
