"""A lost host costs minutes, not hours: a worker and its flow-run process killed mid-render.

The deployed setup: `prefect.yaml` on a real `prefect server`, a `gpu` process worker picks up a
`render-job` deployment run; the worker's process group and its flow-run process are SIGKILLed while
the job is `rendering`. Another `gpu` worker and a `cpu` worker (the other hosts) stay; the
`dead-run-sweep` deployment marks the dead run CRASHED, releases the job (audited) and queues a new
`render-job` run, which takes the job over and publishes it once — seconds after the heartbeat
window, with the six-hour reclaim clock untouched, and the dead run's `gpu` slot given back.
(A separate file from `test_lost_host.py` so the two long tests run on different test workers.)
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from governance.enums import JobState
from governance.schema import AuditEvent
from governance.uow import unit_of_work
from tests.flows.conftest import FlowWorld, cli_env
from tests.flows.deployed import (
    Worker,
    create_run,
    deploy,
    deployments,
    flow_run_pids,
    run_state,
    stop_all,
    wait_dead,
)
from tests.flows.lost_host import flow_run, wait_for_beating_holder, wait_until_silent
from tests.flows.test_deployments import _prefect
from tests.flows.test_deployments import prefect_env as prefect_env  # noqa: F401 - fixtures used below
from tests.flows.test_deployments import prefect_server as prefect_server  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 8.0


def _audited_at(world: FlowWorld, job_id: str, action: str) -> datetime:
    with unit_of_work(world.sessions) as session:
        at = session.scalars(
            select(AuditEvent.occurred_at).where(AuditEvent.job_id == job_id, AuditEvent.action == action)
        ).one()
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _gpu_slots(api: httpx.Client) -> int:
    return int(api.get("/v2/concurrency_limits/gpu").json()["active_slots"])


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_worker_and_its_flow_run_killed_mid_render_cost_seconds(
    flow_world: FlowWorld,
    prefect_env: dict[str, str],  # noqa: F811
    prefect_server: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    world = flow_world
    world.add_subject("S-1")
    world.grant("S-1")
    [job_id] = world.job_ids(world.submit([{"subject": "S-1"}]))
    env = {
        **prefect_env,
        **cli_env(world),
        "LIKENESS_RUN_HEARTBEAT_SECONDS": "1",
        "LIKENESS_RUN_HEARTBEAT_TIMEOUT_SECONDS": str(TIMEOUT_S),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    assert "LIKENESS_RECLAIM_AFTER_MINUTES" not in env  # the six-hour clock stays as it is
    deploy(env)
    _prefect(env, "gcl", "create", "gpu", "--limit", "1")  # the operator's limit: one stream at a time
    api = httpx.Client(base_url=prefect_server, timeout=30)
    found = deployments(api)

    doomed = Worker.start(env, pool="gpu", name="gpu-doomed", cwd=tmp_path)
    workers = [doomed]
    # Read the deployed runs (heartbeat labels, states) from the deployed server.
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        try:
            first = create_run(api, found["render-job--prod"]["id"], {"job_id": job_id})
            holder = wait_for_beating_holder(world, job_id, alive=doomed.alive, timeout=600)
            assert holder == first
            processes = flow_run_pids(holder)
            assert processes, "no flow-run process of the holder found"
            assert all(pid != doomed.pid for pid in processes)  # a process of its own, below the worker
            assert _gpu_slots(api) <= 1

            doomed.kill()  # the worker's process group ...
            for pid in processes:  # ... and the flow-run process, whichever group it is in
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            wait_dead(processes)
            killed_at = datetime.now(UTC)
            assert world.state(job_id) == JobState.rendering and world.job(job_id).flow_run_id == holder
            assert flow_run(holder).state.is_running()  # nobody told Prefect

            # The other hosts: a gpu worker to render, a cpu worker for the sweep.
            workers += [
                Worker.start(env, pool="gpu", name="gpu-survivor", cwd=tmp_path),
                Worker.start(env, pool="cpu", name="cpu", cwd=tmp_path),
            ]
            wait_until_silent(holder, longer_than=TIMEOUT_S + 1)
            sweep = create_run(api, found["dead-run-sweep--prod"]["id"], {})
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and world.state(job_id) not in (
                JobState.published,
                JobState.failed,
            ):
                time.sleep(1)
            assert run_state(api, sweep) == "COMPLETED", workers[2].log()
        finally:
            stop_all(workers)
        logs = "\n".join(worker.log() for worker in workers[1:])
        assert world.state(job_id) == JobState.published, logs

        dead = flow_run(holder).state
        assert dead.is_crashed() and "no heartbeat" in (dead.message or "")
    assert world.publications(job_id) == 1
    actions = world.actions(job_id)
    for action in ("job.released", "job.reclaimed", "job.published"):
        assert actions.count(action) == 1, actions
    assert actions.index("job.released") < actions.index("job.reclaimed") < actions.index("job.published")
    # Taken over seconds after the heartbeat window, not hours: the sweep ran once the holder was silent.
    taken_over = (_audited_at(world, job_id, "job.reclaimed") - killed_at).total_seconds()
    assert 0 < taken_over < 300, taken_over
    new_holder = world.job(job_id).flow_run_id
    assert new_holder not in (None, holder)
    # The gpu slot the dead run held came back (the new render got the only slot and gave it back).
    deadline = time.monotonic() + 120
    while _gpu_slots(api) != 0 and time.monotonic() < deadline:
        time.sleep(2)
    assert _gpu_slots(api) == 0
