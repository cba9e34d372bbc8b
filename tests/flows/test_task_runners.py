"""Where a batch's jobs run: the task runner is a setting (threads or Dask), and a batch hands its jobs to
the `render-job` deployment only when it runs as a deployment itself."""

from __future__ import annotations

import pytest
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from flows.batch.flow import batch_flow, dispatch_deployment, task_runner
from flows.runtime.settings import Settings
from tests.flows.conftest import FlowWorld


def test_the_task_runner_is_a_setting() -> None:
    threads = task_runner(Settings(task_runner_workers=3))
    assert isinstance(threads, ThreadPoolTaskRunner) and threads._max_workers == 3
    remote = task_runner(Settings(task_runner="dask", dask_address="tcp://scheduler.internal:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://scheduler.internal:8786"
    local = task_runner(Settings(task_runner="dask"))
    assert isinstance(local, DaskTaskRunner) and local.address is None
    with pytest.raises(ValueError, match="task_runner"):
        Settings(task_runner="celery")  # type: ignore[arg-type]


def test_outside_a_deployment_jobs_run_here(prefect_api: str) -> None:
    assert dispatch_deployment(Settings()) is None  # not a deployment run: nothing is dispatched
    assert dispatch_deployment(Settings(render_deployment="")) is None


@pytest.mark.slow
def test_a_batch_on_the_dask_task_runner(flow_world: FlowWorld) -> None:
    world = flow_world
    world.rt.settings = world.rt.settings.model_copy(update={"task_runner": "dask", "task_runner_workers": 2})
    world.add_subject("S-1")
    world.grant("S-1")
    batch_id = world.submit([{"subject": "S-1", "seed": 1}, {"subject": "S-1", "seed": 2}])
    job_ids = world.job_ids(batch_id)

    flow = batch_flow(world.rt.settings)
    assert isinstance(flow.task_runner, DaskTaskRunner)  # type: ignore[attr-defined]
    results = flow(batch_id=batch_id)  # type: ignore[operator]

    assert results == {job_id: "published" for job_id in job_ids}
    assert all(world.publications(job_id) == 1 for job_id in job_ids)
