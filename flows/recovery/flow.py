"""`dead-run-sweep`: a standing check for jobs held by runs whose host is gone (scheduled every 2 min).

Without it a lost host is noticed only when the next claim meets the job (the nightly batch, a re-run,
`publish-approved`). The sweep (`flows.recovery.steps.release_dead_holders`) marks every RUNNING holder
whose heartbeat stopped CRASHED in Prefect, releases its job through governance (audited
`job.released`), and hands the job on:

* a `rendering` job: when the sweep runs as a deployment and `LIKENESS_RENDER_DEPLOYMENT` is set, one
  `render-job` deployment run for it (any `gpu` worker takes it); otherwise the next batch run does;
* a `publishing` job: with `LIKENESS_PUBLISH_DEPLOYMENT` set, a queued `publish-job` run
  (`flows.publish.queue.queue_publish`, audited `publish.queued`); otherwise `publish-approved`.

Whichever run claims the job next takes it over (audited `job.reclaimed`) and finishes it once. The
dead run's `gpu` slot comes back by itself when its lease runs out (`LIKENESS_GPU_LEASE_SECONDS`).
"""

from __future__ import annotations

from typing import cast

from prefect import flow, get_run_logger, task

from flows.jobs.tasks import run_is_alive
from flows.recovery.steps import ACTOR, Released, release_dead_holders
from flows.runtime.retry import RETRIES, RETRY_DELAYS, only_transient
from flows.runtime.root import Runtime, get_runtime
from governance.enums import JobState


@task(
    name="release-dead-holders",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=only_transient,
)
def release_task(limit: int) -> list[Released]:
    """Mark silent holders crashed and release their jobs (audited); returns what was released."""
    return release_dead_holders(get_runtime(), holder_alive=run_is_alive, limit=limit)


def hand_on(rt: Runtime, item: Released) -> str:
    """Queue the released job's next run where one is configured; says what was done."""
    from flows.batch.flow import dispatch_deployment

    if item.state == JobState.rendering:
        deployment = dispatch_deployment(rt.settings)
        if not deployment:
            return "released: left to the next batch run"
        from prefect.client.schemas.objects import FlowRun
        from prefect.deployments import run_deployment

        run = cast(
            FlowRun,
            run_deployment(
                deployment,
                parameters={"job_id": item.job_id},
                timeout=0,
                tags=[f"job:{item.job_id}"],
                as_subflow=False,
                idempotency_key=f"dead-run-sweep:{item.job_id}:{item.dead_run_id}",
            ),
        )  # sync caller: always the FlowRun
        return f"released: render-job run {run.id} queued"
    if rt.settings.publish_deployment:
        from flows.publish.queue import queue_publish

        ticket = queue_publish(rt, item.job_id, requested_by=ACTOR)
        return f"released: publish-job run {ticket.flow_run_id} queued"
    return "released: left to publish-approved"


@flow(name="dead-run-sweep")
def dead_run_sweep(limit: int = 500) -> dict[str, str]:
    """Release every job held by a dead run and queue its next run; returns job id → what was done."""
    log = get_run_logger()
    rt = get_runtime()
    results: dict[str, str] = {}
    for item in release_task(limit):
        results[item.job_id] = hand_on(rt, item)
        log.warning(
            "job %s (%s) held by dead run %s: %s",
            item.job_id,
            item.state.value,
            item.dead_run_id,
            results[item.job_id],
        )
    return results
