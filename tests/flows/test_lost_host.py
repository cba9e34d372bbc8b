"""A lost host costs minutes, not hours: a render killed outright is detected from its heartbeat.

A real `render-job` run in its own process (on the project's Prefect server, real SQLite and SeaweedFS,
the tiny model) claims a job and is killed with SIGKILL, as a lost machine would be: no handler of ours
runs, the run stays RUNNING in Prefect and the job stays `rendering`. The next batch run finds the
holder's heartbeat stopped, marks that run CRASHED, takes the job over (audited) and finishes it
exactly once — with the six-hour reclaim clock untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from flows.batch.flow import nightly_batch
from flows.runtime.concurrency import ensure_gpu_limit
from flows.runtime.heartbeat import LABEL
from governance.enums import JobState
from tests.flows.conftest import FlowWorld, cli_env

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 8.0
RENDER = "import sys\nfrom flows.render.flow import render_job\nrender_job(sys.argv[1])\n"


def _run(run_id: str) -> object:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id))


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
        deadline = time.monotonic() + 300
        holder = None
        while time.monotonic() < deadline and victim.poll() is None:
            job = world.job(job_id)
            if job.state == JobState.rendering and job.flow_run_id:
                labels = _run(job.flow_run_id).labels or {}  # type: ignore[attr-defined]
                if LABEL in labels:
                    holder = job.flow_run_id
                    break
            time.sleep(0.3)
        assert holder is not None, "the render never claimed the job with a beating run"
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()

    assert world.state(job_id) == JobState.rendering
    assert _run(holder).state.is_running()  # type: ignore[attr-defined]  # Prefect was told nothing
    # Let the heartbeat go stale (bounded wait on the recorded time, not on the code under test).
    while True:
        last = datetime.fromisoformat((_run(holder).labels or {})[LABEL])  # type: ignore[attr-defined]
        if (datetime.now(UTC) - last).total_seconds() > TIMEOUT_S + 1:
            break
        time.sleep(0.5)

    assert nightly_batch(batch_id=batch_id) == {job_id: "published"}

    assert world.publications(job_id) == 1
    actions = world.actions(job_id)
    assert actions.count("job.reclaimed") == 1 and actions.count("job.published") == 1
    dead = _run(holder).state  # type: ignore[attr-defined]
    assert dead.is_crashed() and "no heartbeat" in (dead.message or "")
    assert world.job(job_id).flow_run_id != holder
