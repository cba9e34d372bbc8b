"""Prefect tasks: one small, typed wrapper per step, retried only for transient failures.

Each task takes a job id, calls one plain function of `flows.render.steps` / `flows.publish.steps`
with the process's runtime, and returns a state name or an object key: never frames, embeddings or
image bytes, so nothing personal lands in Prefect's result storage.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.context import get_run_context

from flows.publish import steps as publish_steps
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


@task(name="claim-render", **RETRYING)
def claim_render(job_id: str) -> str:
    """Claim the job for rendering; returns its state after the claim, or `held_elsewhere`."""
    try:
        return render_steps.claim_render(
            get_runtime(), job_id, run_id=flow_run_id(), holder_alive=run_is_alive
        ).value
    except render_steps.HeldElsewhere as exc:
        get_run_logger().info("%s: left to that run", exc)
        return render_steps.HELD_ELSEWHERE


@task(name="verify-consent", **RETRYING)
def verify_consent(job_id: str, actor: str = render_steps.ACTOR) -> str:
    """Fail closed on consent; returns the job's state (`refused` when no consent covers it)."""
    return render_steps.verify_consent(get_runtime(), job_id, actor=actor).value


@task(name="verify-model", **RETRYING)
def verify_model(job_id: str) -> str:
    """The configured model must be registered and active; returns the job's state (`refused` if not)."""
    return render_steps.verify_model(get_runtime(), job_id).value


@task(name="bind-likeness", **RETRYING)
def bind_likeness(job_id: str) -> str:
    """The portrait must show the consenting person; returns the job's state."""
    return render_steps.bind_likeness(get_runtime(), job_id).value


@task(name="render-video", **RETRYING)
def render_video(job_id: str) -> str:
    """Preprocess, animate (holding a `gpu` slot), encode, upload to quarantine; returns the object key."""
    logger = get_run_logger()
    last = {"decile": -1}

    def progress(done: int, total: int | None) -> None:
        if total:
            decile = min(10, done * 10 // total)
            if decile > last["decile"]:
                last["decile"] = decile
                logger.info("job %s: %d/%d frames rendered", job_id, done, total)

    return render_steps.render_video(get_runtime(), job_id, progress=progress)


@task(name="evaluate-checks", **RETRYING)
def evaluate_checks(job_id: str) -> str:
    """Identity and artifact checks, then the policy; returns the job's new state."""
    return render_steps.evaluate_checks(get_runtime(), job_id).value


@task(name="claim-publish", **RETRYING)
def claim_publish(job_id: str) -> str:
    """Claim an approved job for publishing; returns its state after the claim, or `held_elsewhere`."""
    try:
        return publish_steps.claim_publish(
            get_runtime(), job_id, run_id=flow_run_id(), holder_alive=run_is_alive
        ).value
    except render_steps.HeldElsewhere as exc:
        get_run_logger().info("%s: left to that run", exc)
        return render_steps.HELD_ELSEWHERE


@task(name="publish", **RETRYING)
def publish(job_id: str) -> str:
    """Mark and publish once; returns the job's state (`published`, or `refused` at the last moment)."""
    return publish_steps.publish(get_runtime(), job_id).value


@task(name="mark-failed", **RETRYING)
def mark_failed(job_id: str, error_type: str, message: str) -> str:
    """Record a technical failure that retrying will not fix; returns the job's state."""
    return render_steps.fail(get_runtime(), job_id, error_type=error_type, message=message).value
