"""A lost host costs minutes, not hours: a render killed outright is detected from its heartbeat.

1. A real `render-job` run in its own process (on the project's Prefect server, real SQLite and
   SeaweedFS, the tiny model) claims a job and is killed with SIGKILL: no handler of ours runs, the run
   stays RUNNING in Prefect and the job stays `rendering`. The next batch run finds the holder's
   heartbeat stopped, marks that run CRASHED, takes the job over (audited) and finishes it exactly once.
2. The deployed setup, a worker and its flow-run process killed: `tests/flows/test_lost_worker.py`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flows.batch.flow import nightly_batch
from flows.runtime.concurrency import ensure_gpu_limit
from governance.enums import JobState
from tests.flows.conftest import FlowWorld, cli_env
from tests.flows.lost_host import flow_run, wait_for_beating_holder, wait_until_silent
from tests.flows.test_deployments import prefect_env as prefect_env  # noqa: F401 - fixtures used below
from tests.flows.test_deployments import prefect_server as prefect_server  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 8.0
RENDER = "import sys\nfrom flows.render.flow import render_job\nrender_job(sys.argv[1])\n"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_killed_render_is_taken_over_after_its_heartbeat_stops(flow_world: FlowWorld) -> None:
    world = flow_world
    ensure_gpu_limit(1)
    world.rt.settings = world.rt.settings.model_copy(
        update={"run_heartbeat_seconds": 1.0, "run_heartbeat_timeout_seconds": TIMEOUT_S}
    )
    assert world.rt.settings.reclaim_after_minutes == 360  # the long clock plays no part here
    world.add_subject("S-1")
    world.grant("S-1")
    batch_id = world.submit([{"subject": "S-1"}])
    [job_id] = world.job_ids(batch_id)

    env = {**os.environ, **cli_env(world), "LIKENESS_RUN_HEARTBEAT_SECONDS": "1"}
    victim = subprocess.Popen(
        [sys.executable, "-c", RENDER, job_id],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        holder = wait_for_beating_holder(world, job_id, alive=lambda: victim.poll() is None)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()

    assert world.state(job_id) == JobState.rendering
    assert flow_run(holder).state.is_running()  # Prefect was told nothing
    wait_until_silent(holder, longer_than=TIMEOUT_S + 1)

    assert nightly_batch(batch_id=batch_id) == {job_id: "published"}

    assert world.publications(job_id) == 1
    actions = world.actions(job_id)
    assert actions.count("job.reclaimed") == 1 and actions.count("job.published") == 1
    dead = flow_run(holder).state
    assert dead.is_crashed() and "no heartbeat" in (dead.message or "")
    assert world.job(job_id).flow_run_id != holder
