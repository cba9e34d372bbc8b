"""The Prefect task pieces render and publish share: retry rules, the run's id, the holder check.

Every task of `flows.render.flow` and `flows.publish.flow` is one small, typed wrapper of a plain step,
retried only for transient failures (`RETRYING`). Each takes a job id and returns a state name or an
object key: never frames, embeddings or image bytes, so nothing personal lands in Prefect's result
storage.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.context import get_run_context

from flows.jobs import claims
from flows.render import steps as render_steps
from flows.runtime.retry import RETRIES, RETRY_DELAYS, only_transient
from flows.runtime.root import get_runtime

RETRYING: dict[str, Any] = {
    "retries": RETRIES,
    "retry_delay_seconds": RETRY_DELAYS,
    "retry_condition_fn": only_transient,
}


def flow_run_id() -> str:
    """The id of the flow run the caller belongs to: it is recorded on the job as the job's holder."""
    context: Any = get_run_context()
    run = getattr(context, "flow_run", None)
    if run is not None:
        return str(run.id)
    return str(context.task_run.flow_run_id)


def run_is_alive(run_id: str) -> bool:
    """Whether the Prefect flow run that holds a job is still alive (so nobody else may take the job).

    PAUSED, or RUNNING with a recent heartbeat (`flows.runtime.heartbeat`); a RUNNING run whose heartbeat
    stopped is marked CRASHED and counts as dead. A run unknown to this Prefect API counts as dead.
    """
    from flows.runtime.heartbeat import holder_alive

    return holder_alive(run_id, timeout_seconds=get_runtime().settings.run_heartbeat_timeout_seconds)


@task(name="verify-consent", **RETRYING)
def verify_consent(job_id: str, actor: str = render_steps.ACTOR) -> str:
    """Fail closed on consent; returns the job's state (`refused` when no consent covers it)."""
    return render_steps.verify_consent(get_runtime(), job_id, actor=actor).value


@task(name="mark-failed", **RETRYING)
def mark_failed(job_id: str, error_type: str, message: str) -> str:
    """Record a technical failure that retrying will not fix; returns the job's state."""
    return claims.fail(
        get_runtime(), job_id, error_type=error_type, message=message, actor=render_steps.ACTOR
    ).value
