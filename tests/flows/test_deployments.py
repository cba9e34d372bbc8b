"""`prefect.yaml` deploys to a real local Prefect server, and a scheduled run fires and completes on a worker.

Starts `prefect server start` on a free loopback port with its own PREFECT_HOME, creates the `cpu` and
`gpu` process work pools, runs `prefect --no-prompt deploy --all` from the repository root, checks the
deployments (names, pools, cron schedules with time zones, the commit as version), then gives the
review-timeout sweep a cron that fires every ten seconds and starts a `cpu` worker limited to one run at a
time: the run the scheduler creates must be picked up and complete against a migrated SQLite database.
Every API call retries while the server is busy (503 or a read timeout): on two loaded cores Prefect's
SQLite-backed server can stall for seconds, which is load, not a failure of what is tested here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")
EXPECTED = {
    "nightly-batch--prod": ("gpu", "0 2 * * *", "Europe/Berlin"),
    "render-job--prod": ("gpu", None, None),
    "publish-job--prod": ("cpu", None, None),
    "publish-approved--prod": ("cpu", "*/10 * * * *", "UTC"),
    "review-timeout-sweep--prod": ("cpu", "5 * * * *", "UTC"),
    "dead-run-sweep--prod": ("cpu", "*/2 * * * *", "UTC"),
    "takedown--prod": ("cpu", "*/10 * * * *", "UTC"),
    "retention-sweep--prod": ("cpu", "30 3 * * *", "Europe/Berlin"),
    "audit-checkpoint--prod": ("cpu", "*/10 * * * *", "UTC"),
}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def prefect_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    port = _free_port()
    env.update(
        {
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "2",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "DO_NOT_TRACK": "1",
        }
    )
    return env


@pytest.fixture
def prefect_server(prefect_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    api = prefect_env["PREFECT_API_URL"]
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - handed to the child
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", prefect_env["PREFECT_SERVER_API_PORT"]],
        env=prefect_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            try:
                if httpx.get(f"{api}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail("prefect server did not become healthy in 60 s")
        yield api
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _prefect(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (
        f"prefect {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    )
    return done.stdout


def test_deploy_all_and_a_scheduled_run_fires(
    prefect_env: dict[str, str], prefect_server: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    env = prefect_env
    for pool in ("cpu", "gpu"):
        _prefect(env, "work-pool", "create", pool, "--type", "process")
    _prefect(env, "--no-prompt", "deploy", "--all")

    api = httpx.Client(base_url=prefect_server, timeout=30)
    deployments = {d["name"]: d for d in _post_retrying_busy(api, "/deployments/filter", json={}).json()}
    assert set(deployments) == set(EXPECTED)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    for name, (pool, cron, zone) in EXPECTED.items():
        deployment = deployments[name]
        assert deployment["work_pool_name"] == pool, name
        assert deployment["version"] == commit.stdout.strip(), name
        assert deployment["pull_steps"][0]["prefect.deployments.steps.set_working_directory"][
            "directory"
        ] == str(ROOT)
        crons = [(s["schedule"].get("cron"), s["schedule"].get("timezone")) for s in deployment["schedules"]]
        assert crons == ([(cron, zone)] if cron else []), name

    sweep = deployments["review-timeout-sweep--prod"]
    created = _post_retrying_busy(
        api,
        f"/deployments/{sweep['id']}/schedules",
        json=[{"schedule": {"cron": "* * * * * */10", "timezone": "UTC"}, "active": True}],
    )
    assert created.status_code == 201, created.text

    worker_env = {
        **env,
        "LIKENESS_DATABASE_URL": sqlite_db_url,
        "LIKENESS_VAR_DIR": str(tmp_path / "var"),
        "PREFECT_LOGGING_LEVEL": "INFO",  # the worker logs the runs it submits: a failure shows how far it got
    }
    worker_log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - handed to the child
    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", "cpu", "--type", "process", "--limit", "1"],
        env=worker_env,
        cwd=tmp_path,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # Generous: on two loaded cores the scheduler, the worker's poll and the flow-run process's start
        # each take seconds (CI once needed more than 90 s); a healthy run completes in about ten.
        completed = _wait_for_completed_run(api, sweep["id"], timeout=300)
    finally:
        os.killpg(worker.pid, signal.SIGINT)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        worker_log.close()
    assert completed is not None, (
        f"runs of the sweep: {_run_states(api, sweep['id'])}\n"
        + (tmp_path / "worker.log").read_text()[-3000:]
    )
    assert completed["state"]["type"] == "COMPLETED"
    assert completed["auto_scheduled"] is True


def _post_retrying_busy(api: httpx.Client, path: str, *, json: object, attempts: int = 10) -> httpx.Response:
    """POST, retrying while Prefect's SQLite-backed server is busy under load: a 503 or a read timeout."""
    for attempt in range(attempts):
        try:
            response = api.post(path, json=json)
        except httpx.TimeoutException:
            if attempt == attempts - 1:
                raise
        else:
            if response.status_code != 503 or attempt == attempts - 1:
                return response
        time.sleep(1.0)
    raise AssertionError("unreachable")


def _run_states(api: httpx.Client, deployment_id: str) -> list[tuple[str, str]]:
    """(state name, expected start time) of every run of the deployment, for a failure message."""
    body = {"deployments": {"id": {"any_": [deployment_id]}}}
    runs = _post_retrying_busy(api, "/flow_runs/filter", json=body).json()
    return [(run["state"]["name"], run["expected_start_time"]) for run in runs[:10]]


def _wait_for_completed_run(api: httpx.Client, deployment_id: str, *, timeout: float) -> dict | None:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    body = {
        "deployments": {"id": {"any_": [deployment_id]}},
        "flow_runs": {"state": {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED"]}}},
    }
    while time.monotonic() < deadline:
        runs = _post_retrying_busy(api, "/flow_runs/filter", json=body).json()
        if runs:
            return runs[0]  # type: ignore[no-any-return]
        time.sleep(1)
    return None
