"""Shared helpers of the lost-host tests: Prefect runs as a dead host leaves them, and waits on heartbeats.

`holder_run` makes a real flow run on the test's Prefect server in the state a run of ours is in when its
host dies (RUNNING, with a `likeness.heartbeat` label of a given age); `hold` records it as a job's
holder through governance, as a claim does. `wait_for_beating_holder` and `wait_until_silent` bound the
waits of the kill tests on what is recorded (the job row, the run's label), not on the code under test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import flow

from flows.runtime.heartbeat import LABEL
from governance import jobs
from governance.enums import JobState
from governance.uow import unit_of_work
from tests.flows.conftest import FlowWorld


@flow(name="lost-holder")
def _lost_holder() -> None:
    """Never run: its flow runs stand in for render/publish runs whose host is gone."""


def flow_run(run_id: str) -> Any:
    """The flow run as the Prefect API has it now."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id))


def holder_run(*, last_beat: datetime | None, state: str = "RUNNING") -> str:
    """A flow run in `state` (RUNNING or CRASHED) whose last heartbeat was at `last_beat`; its id."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed, Running

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(_lost_holder, state=Running())
        if last_beat is not None:
            client.update_flow_run_labels(run.id, {LABEL: last_beat.isoformat()})
        if state == "CRASHED":
            client.set_flow_run_state(run.id, Crashed(message="process exited"), force=True)
    return str(run.id)


def hold(world: FlowWorld, job_id: str, run_id: str, *, to: JobState = JobState.rendering) -> None:
    """Record `run_id` as the job's holder (`submitted -> rendering` or `approved -> publishing`)."""
    with unit_of_work(world.sessions) as session:
        job = jobs.get_job(session, job_id)
        jobs.claim(session, job, to=to, flow_run_id=run_id, actor="system:test")


def wait_for_beating_holder(
    world: FlowWorld, job_id: str, *, alive: Callable[[], bool], timeout: float = 300
) -> str:
    """The run id once the job is `rendering` under a run that has beaten at least once.

    `alive` says whether the process expected to claim it still runs (stop waiting when it died).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        job = world.job(job_id)
        if job.state == JobState.rendering and job.flow_run_id:
            if LABEL in (flow_run(job.flow_run_id).labels or {}):
                return str(job.flow_run_id)
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} was never claimed by a beating run (state {world.state(job_id)})")


def wait_until_silent(run_id: str, *, longer_than: float, timeout: float = 120) -> None:
    """Until the run's last heartbeat is more than `longer_than` s old (it must have stopped beating)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = datetime.fromisoformat((flow_run(run_id).labels or {})[LABEL])
        if (datetime.now(UTC) - last).total_seconds() > longer_than:
            return
        time.sleep(0.5)
    raise AssertionError(f"flow run {run_id} kept beating for {timeout:.0f} s after it was killed")
