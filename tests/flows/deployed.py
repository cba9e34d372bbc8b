"""Shared helpers of the tests that deploy `prefect.yaml` to a real server and run real process workers.

`deploy` creates the pools and runs `prefect --no-prompt deploy --all` from the repository root;
`Worker.start` runs `prefect worker start` in a process group of its own with its log in a file, and
`stop` ends it the way an operator does (SIGINT, then SIGKILL). `flow_run_pids` finds the flow-run
processes a process worker started for a run (from `PREFECT__FLOW_RUN_ID` in their environment), so a
test can kill them as a lost host would. The server fixtures live in `tests/flows/test_deployments.py`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from tests.flows.test_deployments import PREFECT, _post_retrying_busy, _prefect


def deploy(env: dict[str, str]) -> None:
    """The `cpu` and `gpu` process pools and every deployment of `prefect.yaml`."""
    for pool in ("cpu", "gpu"):
        _prefect(env, "work-pool", "create", pool, "--type", "process")
    _prefect(env, "--no-prompt", "deploy", "--all")


def deployments(api: httpx.Client) -> dict[str, dict[str, Any]]:
    """Deployment name → the deployment, as the server has them."""
    return {d["name"]: d for d in _post_retrying_busy(api, "/deployments/filter", json={}).json()}


def create_run(api: httpx.Client, deployment_id: str, parameters: dict[str, Any]) -> str:
    """A run of the deployment (a worker of its pool takes it); its id."""
    started = _post_retrying_busy(
        api, f"/deployments/{deployment_id}/create_flow_run", json={"parameters": parameters}
    )
    assert started.status_code == 201, started.text
    return str(started.json()["id"])


def run_state(api: httpx.Client, run_id: str) -> str | None:
    """The run's state type, or None while the server is too busy to answer (poll again)."""
    try:
        return str(api.get(f"/flow_runs/{run_id}").json()["state"]["type"])
    except httpx.TimeoutException:
        return None


@dataclass
class Worker:
    """A `prefect worker start` process (leader of its own process group) and its log."""

    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes]

    @classmethod
    def start(cls, env: dict[str, str], *, pool: str, name: str, cwd: Path) -> Worker:
        log_path = cwd / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - handed to the child, closed by stop()
        process = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", pool, "--type", "process", "--name", name],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return cls(process, log_path, log)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, *, grace: float = 60) -> None:
        """SIGINT (workers ignore SIGTERM for a while), SIGKILL to the group if it does not end in time."""
        if self.alive():
            os.killpg(self.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL to the worker's whole process group, as a lost host: nothing of it runs a handler."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def log(self, tail: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]


def stop_all(workers: list[Worker]) -> None:
    """Stop every worker (signals first, then the waits, so they shut down side by side)."""
    for worker in workers:
        if worker.alive():
            os.killpg(worker.pid, signal.SIGINT)
    for worker in workers:
        worker.stop()


def flow_run_pids(run_id: str) -> list[int]:
    """Pids of the processes running flow run `run_id` (a process worker sets PREFECT__FLOW_RUN_ID)."""
    needle = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def pid_alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def wait_dead(pids: list[int], *, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(pid) for pid in pids), f"still running: {[p for p in pids if pid_alive(p)]}"
