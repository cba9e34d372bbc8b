"""Jobs that run together give the answers they give alone.

A batch of identical jobs (one portrait, one driving clip, one seed) runs on the default thread task
runner, so face detection, driving tracking, the model and the identity checks of several jobs overlap in
one process. Every job must come out with the same render and the same check scores, bit for bit.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from flows.batch.flow import nightly_batch
from governance.schema import CheckResult
from governance.uow import unit_of_work
from tests.flows.conftest import FlowWorld

JOBS = 4


@pytest.mark.slow
def test_identical_jobs_in_parallel_score_identically(flow_world: FlowWorld) -> None:
    world = flow_world
    world.add_subject("S-1")
    world.grant("S-1")
    batch_id = world.submit([{"subject": "S-1", "seed": 7, **world.media_copy(i)} for i in range(JOBS)])
    job_ids = world.job_ids(batch_id)
    assert len(job_ids) == JOBS

    results = nightly_batch(batch_id=batch_id)

    assert results == {job_id: "published" for job_id in job_ids}
    renders = {world.job(job_id).output_sha256 for job_id in job_ids}
    assert len(renders) == 1 and None not in renders
    with unit_of_work(world.sessions) as session:
        checks = list(session.scalars(select(CheckResult).where(CheckResult.job_id.in_(job_ids))))
    assert len(checks) == JOBS
    first = checks[0].scores
    assert first["fidelity_mean_distance"] is not None
    assert all(check.scores == first for check in checks), [check.scores for check in checks]
    assert all(check.details == checks[0].details for check in checks)
