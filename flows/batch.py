"""`nightly_batch`: every unfinished job (of one batch, or of all) in parallel on the flow's task runner.

Each job runs the `render_job` flow inside a task, so the task runner decides where jobs run: threads
by default, processes with `process_batch_runner(settings, workers=N)`, or a Dask cluster
(`prefect_dask.DaskTaskRunner`) for several machines. Whatever runs them, the animation itself takes a
slot of the `gpu` global concurrency limit, created here with `LIKENESS_GPU_CONCURRENCY` slots when it
is missing (an existing limit is the operator's and is left as it is).

Re-running a batch is safe at any point: finished jobs are not picked up again, half-done ones resume
where they stopped (see `render_job`), and publication happens at most once per job.
"""

from __future__ import annotations

import logging

from prefect import flow, get_run_logger, task
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from flows.concurrency import ensure_gpu_limit
from flows.queries import UNFINISHED, jobs_in_states
from flows.render import render_job
from flows.runtime import configure_runtime, get_runtime
from flows.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_THREADS = 4


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
    ensure_gpu_limit(rt.settings.gpu_concurrency)
    job_ids = jobs_in_states(rt, UNFINISHED, batch_id=batch_id, limit=limit)
    log.info("%d unfinished job(s)%s", len(job_ids), f" in batch {batch_id}" if batch_id else "")
    futures = {job_id: run_job.submit(job_id) for job_id in job_ids}
    results: dict[str, str] = {}
    for job_id, future in futures.items():
        future.wait()
        state = future.state
        results[job_id] = str(state.result()) if state.is_completed() else f"error: {state.message}"
    failures = [job_id for job_id, outcome in results.items() if outcome.startswith("error:")]
    if failures:
        raise BatchIncomplete(f"{len(failures)} of {len(results)} job(s) failed: {', '.join(failures)}")
    return results


def process_batch_runner(settings: Settings, *, workers: int) -> ProcessPoolTaskRunner:
    """A process pool whose workers each build their own runtime (and load the model once) at start."""
    return ProcessPoolTaskRunner(max_workers=workers, initializer=_start_worker, initargs=(settings,))


def _start_worker(settings: Settings) -> None:
    """Process-pool initializer: this worker's runtime, from the parent's settings."""
    configure_runtime(settings)


def batch_flow(settings: Settings, *, workers: int = 0) -> object:
    """`nightly_batch` on threads (`workers=0`) or on `workers` processes, once the Prefect API answers.

    Raises:
        flows.orchestrator.OrchestratorUnavailable: no Prefect API, or it does not answer (one line).
    """
    from flows.orchestrator import require_api

    require_api(settings)
    if workers <= 0:
        return nightly_batch
    return nightly_batch.with_options(task_runner=process_batch_runner(settings, workers=workers))  # type: ignore[arg-type]
