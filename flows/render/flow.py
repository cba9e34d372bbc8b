"""`render_job`: one job from consent to the policy's outcome, resuming wherever a previous run stopped.

The flow reads like the DAG: claim → consent → model → likeness → render → checks → (auto-approved) publish.
A flagged job ends here at `awaiting_review`: nothing holds a worker or a GPU while a person decides
(see `flows.review.steps`). A refusal is a normal end with the job `refused`; a technical failure that
retrying cannot fix marks the job `failed` and fails the run; a transient failure that outlived its
retries leaves the job where it was, for the next run to re-claim.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from flows.jobs import tasks
from flows.jobs.claims import HELD_ELSEWHERE, describe
from flows.jobs.tasks import RETRYING
from flows.publish.flow import publish_job
from flows.render import steps as render_steps
from flows.render.steps import REFUSED
from flows.runtime.heartbeat import beating, current_run_id
from flows.runtime.preflight import preflight
from flows.runtime.retry import is_transient
from flows.runtime.root import get_runtime
from governance.enums import JobState
from governance.errors import InvalidTransition


@task(name="claim-render", **RETRYING)
def claim_render(job_id: str) -> str:
    """Claim the job for rendering; returns its state after the claim, or `held_elsewhere`."""
    return tasks.claim_for_this_run(render_steps.claim_render, job_id)


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


@flow(name="render-job", log_prints=False)
def render_job(job_id: str) -> str:
    """Render, check and (when the policy allows) publish one job; returns the job's final state."""
    preflight(get_runtime())  # configuration first: a bad setting must not consume the job
    every = get_runtime().settings.run_heartbeat_seconds
    with beating(current_run_id(), every=every):
        return _render(job_id)


def _render(job_id: str) -> str:
    try:
        claimed = claim_render(job_id)
        if claimed == HELD_ELSEWHERE:
            return claimed
        state = JobState(claimed)
        if state == JobState.rendering:
            for gate in (tasks.verify_consent, verify_model, bind_likeness):
                state = JobState(gate(job_id))
                if state != JobState.rendering:
                    return state.value
            if render_video(job_id) == REFUSED:  # a driving video without a followable face
                return REFUSED
            state = JobState.rendered
        if state == JobState.rendered:
            state = JobState(evaluate_checks(job_id))
    except Exception as exc:  # noqa: BLE001 - recorded on the job, then re-raised for Prefect
        _record_failure(job_id, exc)
        raise
    if state in (JobState.approved, JobState.publishing):
        return publish_job(job_id)
    return state.value


def _record_failure(job_id: str, exc: BaseException) -> None:
    """A non-transient failure moves the job to `failed`; a transient one leaves it for the next run.

    A conflicting state change (another run moved the job first) is not this run's failure to record.
    """
    if is_transient(exc) or isinstance(exc, InvalidTransition):
        return
    error_type, message = describe(exc)
    tasks.mark_failed(job_id, error_type, message)
