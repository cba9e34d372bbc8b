"""A batch spreads over workers: `nightly-batch` run as a deployment hands one `render-job` deployment run
per job to the `gpu` pool, and two process workers share them.

A real `prefect server start` (its own home), the project's `prefect.yaml` deployed with
`prefect --no-prompt deploy --all`, two `prefect worker start --pool gpu` processes with the test's
database, SeaweedFS and tiny model in their environment, and a batch of four jobs the loose policy
auto-approves. Both workers must have run render-job runs, and every job is published exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.flows.conftest import FlowWorld, cli_env
from tests.flows.test_deployments import PREFECT, _post_retrying_busy, _prefect
from tests.flows.test_deployments import prefect_env as prefect_env  # noqa: F401 - fixtures used below
from tests.flows.test_deployments import prefect_server as prefect_server  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
JOBS = 4


def _final_runs(api: httpx.Client, deployment_id: str) -> list[dict]:  # type: ignore[type-arg]
    body = {"deployments": {"id": {"any_": [deployment_id]}}}
    return list(_post_retrying_busy(api, "/flow_runs/filter", json=body).json())


def test_two_workers_share_a_batch(
    flow_world: FlowWorld,
    prefect_env: dict[str, str],
    prefect_server: str,
    tmp_path: Path,  # noqa: F811
) -> None:
    world = flow_world
    world.add_subject("S-1")
    world.grant("S-1")
    batch_id = world.submit([{"subject": "S-1", "seed": seed} for seed in range(JOBS)])
    job_ids = world.job_ids(batch_id)

    env = {
        **prefect_env,
        **cli_env(world),
        "LIKENESS_GPU_CONCURRENCY": "2",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "PREFECT_LOGGING_LEVEL": "INFO",
    }  # the workers log the runs they submit: who took which
    for pool in ("cpu", "gpu"):
        _prefect(env, "work-pool", "create", pool, "--type", "process")
    _prefect(env, "--no-prompt", "deploy", "--all")
    api = httpx.Client(base_url=prefect_server, timeout=30)
    deployments = {d["name"]: d for d in _post_retrying_busy(api, "/deployments/filter", json={}).json()}

    workers, logs = [], []
    for index in range(2):
        log_path = tmp_path / f"worker-{index}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - handed to the child
        logs.append((log_path, log))
        workers.append(
            subprocess.Popen(
                [
                    PREFECT,
                    "worker",
                    "start",
                    "--pool",
                    "gpu",
                    "--type",
                    "process",
                    "--name",
                    f"gpu-worker-{index}",
                ],
                env=env,
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    try:
        started = _post_retrying_busy(
            api,
            f"/deployments/{deployments['nightly-batch--prod']['id']}/create_flow_run",
            json={"parameters": {"batch_id": batch_id}},
        )
        assert started.status_code == 201, started.text
        batch_run = started.json()["id"]
        deadline = time.monotonic() + 900
        state = None
        while time.monotonic() < deadline:
            try:
                state = api.get(f"/flow_runs/{batch_run}").json()["state"]["type"]
            except httpx.TimeoutException:  # Prefect's SQLite-backed server busy under load: poll again
                time.sleep(2)
                continue
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(2)
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGINT)
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        for _, log in logs:
            log.close()
    worker_logs = [path.read_text(errors="replace") for path, _ in logs]
    assert state == "COMPLETED", f"nightly-batch ended {state}\n" + "\n".join(
        text[-3000:] for text in worker_logs
    )

    renders = _final_runs(api, deployments["render-job--prod"]["id"])
    assert len(renders) == JOBS and all(run["state"]["type"] == "COMPLETED" for run in renders)
    assert sorted(run["parameters"]["job_id"] for run in renders) == sorted(job_ids)
    # Each worker submitted at least one of the render runs (two distinct flow-run processes and workers).
    by_worker = [{run["id"] for run in renders if run["id"] in text} for text in worker_logs]
    assert all(by_worker), f"render runs per worker: {[len(ids) for ids in by_worker]}"
    pids = {run["infrastructure_pid"] for run in renders}
    assert len(pids) == JOBS  # one flow-run process per job
    for job_id in job_ids:
        assert world.publications(job_id) == 1
