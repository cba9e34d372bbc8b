"""One Prefect API, and a `gpu` limit that belongs to the operator and survives a killed run.

Real components: the project's own local Prefect server (the `prefect_api` fixture runs the same
`LocalPrefectServer` as `likeness orchestrator up`, with its lease repossessor), real subprocesses
killed with SIGKILL, and the `likeness` CLI in a subprocess for the one-line errors.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from console.cli.app import app
from flows.runtime.concurrency import ensure_gpu_limit, gpu_slot
from flows.runtime.orchestrator import LocalPrefectServer, OrchestratorUnavailable, require_api
from flows.runtime.settings import Settings
from governance.enums import JobState
from tests.flows.conftest import FlowWorld, cli_env

ROOT = Path(__file__).resolve().parents[2]
LIKENESS = str(Path(sys.executable).parent / "likeness")


def _limit(name: str) -> tuple[int, int]:
    """(limit, active slots) of a global concurrency limit, read from the server."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = client.read_global_concurrency_limit_by_name(name)
        return int(found.limit), int(found.active_slots)


def _set_limit(name: str, size: int) -> None:
    """What an operator does with `prefect gcl update NAME --limit N`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=size))


def test_gpu_limit_is_created_when_missing_and_never_overwritten(prefect_api: str) -> None:
    name = f"gpu-{uuid.uuid4().hex[:8]}"
    assert ensure_gpu_limit(2, name=name) == 2
    assert _limit(name) == (2, 0)

    _set_limit(name, 5)  # the operator's decision
    assert ensure_gpu_limit(1, name=name) == 5  # a run configured with 1 slot keeps the operator's 5
    assert _limit(name) == (5, 0)


def test_a_slot_is_released_on_every_way_out_of_the_block(prefect_api: str) -> None:
    name = f"gpu-{uuid.uuid4().hex[:8]}"
    ensure_gpu_limit(1, name=name)
    for error in (ValueError("bad frame"), KeyboardInterrupt(), SystemExit(3)):
        with pytest.raises(type(error)), gpu_slot(name=name, timeout_seconds=30, lease_seconds=60):
            assert _limit(name) == (1, 1)
            raise error
        assert _limit(name) == (1, 0), f"slot kept after {type(error).__name__}"


HOLD_SLOT = """
import sys, time
from flows.runtime.concurrency import gpu_slot
with gpu_slot(name=sys.argv[1], timeout_seconds=60, lease_seconds=60):
    print("holding", flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_run_killed_while_holding_the_gpu_slot_does_not_keep_it(prefect_api: str) -> None:
    """Issue 18: a run killed during animation left the slot taken for good; now the lease runs out."""
    name = f"gpu-{uuid.uuid4().hex[:8]}"
    ensure_gpu_limit(1, name=name)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SLOT, name],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        start_new_session=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        assert _limit(name) == (1, 1)
        os.killpg(holder.pid, signal.SIGKILL)  # as a lost host would: no handler of ours runs
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()
    assert _limit(name) == (1, 1)  # still held: nobody released it

    # The next render waits for the dead run's lease to run out, then gets the slot, and gives it back.
    with gpu_slot(name=name, timeout_seconds=300, lease_seconds=60):
        assert _limit(name) == (1, 1)
    assert _limit(name) == (1, 0)


def test_an_unreachable_api_is_one_line_naming_prefect_api_url(prefect_api: str, tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}),
        pytest.raises(OrchestratorUnavailable) as refused,
    ):
        require_api(settings)
    message = str(refused.value)
    assert "PREFECT_API_URL=http://127.0.0.1:9/api" in message and "unreachable" in message
    assert "\n" not in message


@pytest.mark.slow
def test_the_cli_without_an_api_says_so_in_one_line(flow_world: FlowWorld, tmp_path: Path) -> None:
    world = flow_world
    world.add_subject("S-1")
    world.grant("S-1")
    batch_id = world.submit([{"subject": "S-1"}])
    [job_id] = world.job_ids(batch_id)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_API")}
    env.update(cli_env(world))
    env["LIKENESS_VAR_DIR"] = str(tmp_path / "no-server-here")
    for api, expected in (
        (None, "no Prefect API: PREFECT_API_URL is not set"),
        (
            "http://127.0.0.1:9/api",
            "the Prefect API at PREFECT_API_URL=http://127.0.0.1:9/api is unreachable",
        ),
    ):
        run_env = dict(env) if api is None else {**env, "PREFECT_API_URL": api}
        done = subprocess.run(
            [LIKENESS, "batch", "run", batch_id],
            env=run_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        assert world.state(job_id) == JobState.submitted  # nothing started


def test_orchestrator_status_and_down_without_a_server(tmp_path: Path) -> None:
    env = {"LIKENESS_VAR_DIR": str(tmp_path / "var"), "COLUMNS": "200"}
    status = CliRunner().invoke(app, ["orchestrator", "status"], env=env)
    assert status.exit_code == 1 and "not started" in status.output
    down = CliRunner().invoke(app, ["orchestrator", "down"], env=env)
    assert down.exit_code == 0 and "was not running" in down.output

    # A state file left by a server that died is reported as stale, not trusted.
    server = LocalPrefectServer(tmp_path / "var" / "prefect")
    server.root.mkdir(parents=True)
    server.state_path.write_text(
        '{"pid": 999999, "api_url": "http://127.0.0.1:1/api", "port": 1, "home": "x", "started_at": 0}',
        encoding="utf-8",
    )
    status = CliRunner().invoke(app, ["orchestrator", "status"], env=env)
    assert status.exit_code == 1 and "stale state" in status.output


def test_the_test_server_is_the_projects_own_on_loopback(prefect_api: str, prefect_server_root: Path) -> None:
    server = LocalPrefectServer(prefect_server_root)
    current = server.status()
    assert current.running and current.healthy and current.api_url == prefect_api
    assert prefect_api.startswith("http://127.0.0.1:")


def test_an_approval_that_cannot_be_queued_is_not_recorded(flow_world: FlowWorld) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.review.steps import apply_decision
    from governance import review
    from governance.uow import unit_of_work
    from tests.flows.conftest import REVIEWER, REVIEWER_OPERATOR

    world = flow_world
    world.add_subject("S-1")
    world.grant("S-1")
    [job_id] = world.flagged_batch(["S-1"], requester=REVIEWER_OPERATOR)
    with (
        temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}),
        pytest.raises(OrchestratorUnavailable, match="PREFECT_API_URL=http://127.0.0.1:9/api"),
    ):
        apply_decision(
            rt=world.rt,
            job_id=job_id,
            reviewer_email=REVIEWER,
            verdict="approve",
            reason="fine",
        )
    assert world.state(job_id) == JobState.awaiting_review
    with unit_of_work(world.sessions) as session:
        assert review.get_decision(session, job_id) is None
    # A rejection needs no publication, so no API either.
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        result = apply_decision(
            rt=world.rt,
            job_id=job_id,
            reviewer_email=REVIEWER,
            verdict="reject",
            reason="drifts",
        )
    assert result.state == "rejected" and result.publishing is None


FLUSHED = """
import sys, tempfile
from pathlib import Path
from prefect import flow, task
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from flows.runtime.orchestrator import LocalPrefectServer, serving

@task
def step(i: int) -> int:
    return i

@flow
def little() -> int:
    return sum(step.map(range(30)).result())

with tempfile.TemporaryDirectory() as tmp:
    with serving(LocalPrefectServer(Path(tmp), port=0), timeout=240):
        assert little() == 435
        assert EventsWorker._instances, "the flow sent no events: nothing to flush"
    print("left", len(EventsWorker._instances), len(APILogWorker._instances), flush=True)
"""


@pytest.mark.slow
def test_a_server_this_process_stops_leaves_no_queued_events_behind() -> None:
    """Events still queued when the server went away were retried against its dead port for minutes."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_API")}
    env["PREFECT_LOGGING_TO_API_ENABLED"] = "true"
    done = subprocess.run(
        [sys.executable, "-c", FLUSHED], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "left 0 0"
    assert "Unable to connect" not in done.stderr and "failed to process item" not in done.stderr
