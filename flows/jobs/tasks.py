"""The Prefect task pieces render and publish share: retry rules, the run's id, the holder check.

Every task of `flows.render.flow` and `flows.publish.flow` is one small, typed wrapper of a plain step,
retried only for transient failures (`RETRYING`). Each takes a job id and returns a state name or an
object key: never frames, embeddings or image bytes, so nothing personal lands in Prefect's result
storage.
"""

from __future__ import annotations

from typing import Any, Protocol

from prefect import get_run_logger, task
from prefect.context import get_run_context

from flows.jobs import claims
from flows.render import steps as render_steps
from flows.runtime.retry import RETRIES, RETRY_DELAYS, only_transient
from flows.runtime.root import Runtime, get_runtime
from governance.enums import JobState

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


class ClaimStep(Protocol):
    """A plain claim step (`flows.render.steps.claim_render`, `flows.publish.steps.claim_publish`)."""

    def __call__(
        self, rt: Runtime, job_id: str, *, run_id: str, holder_alive: claims.HolderCheck | None = None
    ) -> JobState: ...


def claim_for_this_run(step: ClaimStep, job_id: str) -> str:
    """Claim the job for the calling flow run: its state after the claim, or `held_elsewhere` when a live
    run holds it (logged, and left to that run), so the render and publish tasks claim alike."""
    try:
        return step(get_runtime(), job_id, run_id=flow_run_id(), holder_alive=run_is_alive).value
    except claims.HeldElsewhere as exc:
        get_run_logger().info("%s: left to that run", exc)
        return claims.HELD_ELSEWHERE


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
