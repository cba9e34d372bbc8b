"""Throughput of a batch run as deployments: `nightly-batch` on one and on two `gpu` pool process workers.

What an operator scales: `prefect.yaml` deployed to a project-local Prefect server
(`flows.runtime.orchestrator.LocalPrefectServer`), `prefect worker start --pool gpu` processes (plus one
`cpu` worker, which nobody needs here), and one `nightly-batch` deployment run whose jobs go out as
`render-job` deployment runs. Each render runs in a flow-run process of its own, which loads the model
and the face models itself; that start-up is part of what a worker costs, so it is in the numbers.
The `gpu` limit is created with as many slots as workers (the operator's setting).

Used by `bench/batch.py` (table (2b)); runnable alone for one worker count:

    python -m bench.deployed_batch --jobs 4 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from bench.batch import ROOT, Throughput, _submit, _world, tiny_checkpoint

PREFECT = str(Path(sys.executable).parent / "prefect")
DONE = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def worker_env(settings: Any, api_url: str, *, slots: int) -> dict[str, str]:
    """The environment of the workers (and the flow-run processes they start): this run's services."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "LIKENESS_"))}
    env.update(
        {
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            **settings.as_environment(),
            "LIKENESS_GPU_CONCURRENCY": str(slots),
        }
    )
    return env


def _prefect(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"prefect {' '.join(args)} failed: {(done.stderr or done.stdout)[-1500:]}")


def _start_worker(env: dict[str, str], pool: str, name: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", pool, "--type", "process", "--name", name],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGINT)
    for worker in workers:
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def _wait_for(run_id: UUID, *, timeout: float) -> tuple[str, float]:
    """The run's final state type and the `time.monotonic()` at which it was first seen final."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            if run.state is not None and run.state.type.value in DONE:
                return run.state.type.value, time.monotonic()
            time.sleep(1)
    raise TimeoutError(f"nightly-batch run {run_id} did not finish in {timeout:.0f} s")


def _job_states(rt: Any, batch_id: str) -> list[str]:
    from governance.batches import jobs_of_batch
    from governance.enums import JobState
    from governance.uow import unit_of_work

    with unit_of_work(rt.sessions) as session:
        return [JobState(job.state).value for job in jobs_of_batch(session, batch_id)]


def measure_deployed_throughput(checkpoint: Path, jobs: int, workers: int) -> Throughput:
    """N jobs through the `nightly-batch` deployment with `workers` gpu process workers."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.runtime.concurrency import ensure_gpu_limit
    from flows.runtime.orchestrator import LocalPrefectServer, serving

    with tempfile.TemporaryDirectory(prefix="bench-deployed-") as tmp:
        root = Path(tmp)
        world = _world(root, checkpoint, driving_frames=range(300, 350))
        try:
            batch_id = _submit(world.rt, world.batch_file, jobs)
            with (
                serving(LocalPrefectServer(root / "prefect", port=0), timeout=240) as server,
                temporary_settings(updates={PREFECT_API_URL: server.api_url}),
            ):
                env = worker_env(world.rt.settings, server.api_url, slots=workers)
                for pool in ("cpu", "gpu"):
                    _prefect(env, "work-pool", "create", pool, "--type", "process")
                _prefect(env, "--no-prompt", "deploy", "--all")
                ensure_gpu_limit(workers)
                with open(root / "workers.log", "wb") as log:
                    procs: list[subprocess.Popen[bytes]] = []
                    try:
                        for pool, name in [("gpu", f"gpu-{i}") for i in range(workers)] + [("cpu", "cpu-0")]:
                            procs.append(_start_worker(env, pool, name, log))
                        with get_client(sync_client=True) as client:
                            deployment = client.read_deployment_by_name("nightly-batch/nightly-batch--prod")
                            start = time.monotonic()
                            run = client.create_flow_run_from_deployment(
                                deployment.id, parameters={"batch_id": batch_id}
                            )
                        state, end = _wait_for(run.id, timeout=1800)
                    finally:  # while their server is still up: a worker whose server is gone shuts down slowly
                        _stop(procs)
                if state != "COMPLETED":
                    tail = (root / "workers.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"nightly-batch ended {state}:\n{tail}")
            states = _job_states(world.rt, batch_id)
            if set(states) != {"published"}:
                raise RuntimeError(f"not every job was published: {states}")
        finally:
            world.close()
    wall = end - start
    return Throughput(
        workers=workers, jobs=jobs, wall_s=round(wall, 1), jobs_per_min=round(60 * jobs / wall, 2)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as tmp:
        result = measure_deployed_throughput(tiny_checkpoint(Path(tmp)), args.jobs, args.workers)
    print(json.dumps(result.__dict__))


if __name__ == "__main__":
    from flows.runtime.orchestrator import sigterm_as_exit

    with sigterm_as_exit():  # SIGTERM stops the servers and workers it started, as Ctrl-C does
        main()
