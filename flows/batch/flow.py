"""`nightly_batch`: every unfinished job (of one batch, or of all), spread over workers or run here.

Two ways to run the jobs, chosen by where the batch itself runs:

* **As a deployment** (a worker of the `gpu` pool picked the `nightly-batch` run) and with
  `LIKENESS_RENDER_DEPLOYMENT` set (default `render-job/render-job--prod`): one `render-job`
  deployment run per job is created through the Prefect API (`run_deployment`), so any worker of the
  pool takes it, and the batch waits for all of them. Two workers render two jobs at once.
* **Locally** (the CLI, the demo, tests, or `LIKENESS_RENDER_DEPLOYMENT` empty): each job runs the
  `render_job` flow inside a task of the flow's task runner — `LIKENESS_TASK_RUNNER=thread` (default,
  `LIKENESS_TASK_RUNNER_WORKERS` threads), `dask` (`LIKENESS_DASK_ADDRESS` of a scheduler, or a local
  cluster), or `batch_flow(settings, workers=N)` for N processes.

Whatever runs them, the animation itself takes a slot of the `gpu` global concurrency limit, created
here with `LIKENESS_GPU_CONCURRENCY` slots when it is missing (an existing limit is the operator's and
is left as it is). Re-running a batch is safe at any point: finished jobs are not picked up again,
half-done ones resume where they stopped (see `render_job`), and publication happens at most once.
"""

from __future__ import annotations

import logging
import time
from typing import cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from flows.audit.checkpoints import checkpoint_after
from flows.render.flow import render_job
from flows.runtime.concurrency import ensure_gpu_limit
from flows.runtime.preflight import preflight
from flows.runtime.root import Runtime, configure_runtime, get_runtime
from flows.runtime.settings import Settings
from governance import jobs
from governance.enums import JobState
from governance.uow import unit_of_work

logger = logging.getLogger(__name__)

DEFAULT_THREADS = 4
# A batch run picks up every job that is not finished: new ones, and those a crashed run left half-way.
UNFINISHED = (
    JobState.submitted,
    JobState.rendering,
    JobState.rendered,
    JobState.approved,
    JobState.publishing,
)
POLL_SECONDS = 2.0


class BatchIncomplete(RuntimeError):
    """Some jobs of the run ended in a technical failure; the message counts and names them."""


@task(name="run-job")
def run_job(job_id: str) -> str:
    """Run one job's flow on whichever worker the task runner chose; returns the job's final state."""
    return render_job(job_id)


@flow(name="nightly-batch", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_THREADS))  # type: ignore[arg-type]
def nightly_batch(batch_id: str | None = None, limit: int = 500) -> dict[str, str]:
    """Run every unfinished job (of `batch_id`, or of every batch); returns job id → final state.

    Raises:
        BatchIncomplete: after all jobs ran, when some failed technically (refusals are outcomes).
    """
    log = get_run_logger()
    rt = get_runtime()
    preflight(rt)  # a bad policy or checkpoint stops here, before any job is claimed
    ensure_gpu_limit(rt.settings.gpu_concurrency)
    with unit_of_work(rt.sessions) as session:
        job_ids = [job.id for job in jobs.jobs_in_state(session, *UNFINISHED, batch_id=batch_id, limit=limit)]
    log.info("%d unfinished job(s)%s", len(job_ids), f" in batch {batch_id}" if batch_id else "")
    deployment = dispatch_deployment(rt.settings)
    if deployment:
        log.info("dispatching %d render-job run(s) to deployment %s", len(job_ids), deployment)
        results = dispatch_jobs(rt, deployment, job_ids)
    else:
        results = run_here(job_ids)
    checkpoint_after(rt.settings, rt.sessions, "batch")  # before a failure is raised: what ran is covered
    failures = [job_id for job_id, outcome in results.items() if outcome.startswith("error:")]
    if failures:
        raise BatchIncomplete(f"{len(failures)} of {len(results)} job(s) failed: {', '.join(failures)}")
    return results


def run_here(job_ids: list[str]) -> dict[str, str]:
    """Every job as a task of this flow's task runner; job id → final state or `error: ...`."""
    futures = {job_id: run_job.submit(job_id) for job_id in job_ids}
    results: dict[str, str] = {}
    for job_id, future in futures.items():
        future.wait()
        state = future.state
        results[job_id] = str(state.result()) if state.is_completed() else f"error: {state.message}"
    return results


def dispatch_deployment(settings: Settings) -> str | None:
    """The `render-job` deployment to hand jobs to, when this batch itself runs as a deployment."""
    from prefect.runtime import deployment

    if not settings.render_deployment or deployment.id is None:
        return None
    return settings.render_deployment


def dispatch_jobs(rt: Runtime, deployment: str, job_ids: list[str]) -> dict[str, str]:
    """One `render-job` deployment run per job (any worker of its pool takes it); waits for all of them.

    A run's outcome is read back from the job's row (the database is the system of record): the job's
    state when the run completed, `error: <state message>` when it failed or crashed.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.runtime import flow_run

    runs: dict[str, UUID] = {}
    for job_id in job_ids:
        # Idempotent per batch run and job: a retried batch run does not dispatch a job twice.
        # Typed `FlowRun | Coroutine` (Prefect's async_dispatch); called from sync code it is the FlowRun.
        run = cast(
            FlowRun,
            run_deployment(
                deployment,
                parameters={"job_id": job_id},
                timeout=0,
                tags=[f"job:{job_id}"],
                as_subflow=True,
                idempotency_key=f"nightly-batch:{flow_run.id}:{job_id}",
            ),
        )
        runs[job_id] = run.id
    results: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        while len(results) < len(runs):
            for job_id, run_id in runs.items():
                if job_id in results:
                    continue
                state = client.read_flow_run(run_id).state
                if state is None or not state.is_final():
                    continue
                results[job_id] = (
                    _job_state(rt, job_id) if state.is_completed() else f"error: {state.message}"
                )
            if len(results) < len(runs):
                time.sleep(POLL_SECONDS)
    return results


def _job_state(rt: Runtime, job_id: str) -> str:
    from governance.schema import Job
    from governance.uow import unit_of_work

    with unit_of_work(rt.sessions) as session:
        job = session.get(Job, job_id)
        return str(job.state) if job is not None else "missing"


def task_runner(settings: Settings) -> object:
    """The task runner for local fan-out, from `LIKENESS_TASK_RUNNER` (`thread` or `dask`)."""
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        # A local cluster of threads: the workers share this process's runtime and loaded models.
        return DaskTaskRunner(
            cluster_kwargs={
                "processes": False,
                "n_workers": 1,
                "threads_per_worker": settings.task_runner_workers,
            }
        )
    return ThreadPoolTaskRunner(max_workers=settings.task_runner_workers)


def process_batch_runner(settings: Settings, *, workers: int) -> ProcessPoolTaskRunner:
    """A process pool whose workers each build their own runtime (and load the model once) at start."""
    return ProcessPoolTaskRunner(max_workers=workers, initializer=_start_worker, initargs=(settings,))


def _start_worker(settings: Settings) -> None:
    """Process-pool initializer: this worker's runtime, from the parent's settings."""
    configure_runtime(settings)


def batch_flow(settings: Settings, *, workers: int = 0) -> object:
    """`nightly_batch` on the configured task runner, or on `workers` processes, once the API answers.

    Raises:
        flows.runtime.orchestrator.OrchestratorUnavailable: no Prefect API, or it does not answer (one line).
    """
    from flows.runtime.orchestrator import require_api

    require_api(settings)
    runner = process_batch_runner(settings, workers=workers) if workers > 0 else task_runner(settings)
    return nightly_batch.with_options(task_runner=runner)  # type: ignore[arg-type]
