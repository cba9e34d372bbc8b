"""The render half of a job, as plain functions of (runtime, job id): claim, consent, likeness, render, checks.

Each function is one unit of the DAG. It reads what it needs in a short unit of work, does its slow
work outside any transaction, and writes the result and the job's state change (with its audit event)
in a second unit of work. Refusals are outcomes, not exceptions: the job moves to `refused` with the
reason, and the function returns the new state, so nothing retries a refusal. Exceptions that escape
are technical failures; `flows.runtime.retry` decides which of them are worth another attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from flows.jobs.claims import HolderCheck, claim, refuse
from flows.jobs.data import (
    FINAL_STATES,
    JobSpec,
    StoredRef,
    clear_workspace,
    fetch,
    load_job_spec,
    local_name,
    workspace,
)
from flows.runtime.root import Runtime
from governance import consent, jobs
from governance.enums import JobState
from governance.errors import ConsentError
from governance.schema import Job
from governance.types import utcnow
from governance.uow import unit_of_work

logger = logging.getLogger(__name__)

ACTOR = "system:render"
RENDER_NAME = "render.mp4"
Progress = Callable[[int, int | None], None]


def claim_render(
    rt: Runtime, job_id: str, *, run_id: str, holder_alive: HolderCheck | None = None
) -> JobState:
    """Move a submitted job to `rendering` for this run, or re-claim one a crashed run left there.

    Returns the job's state after the claim; a job already past rendering is returned untouched, so a
    re-run of a batch resumes each job where it stopped instead of rendering it again. A job held by
    a run that is still alive (`holder_alive`) is left to it: `HeldElsewhere` is returned as a state.
    """
    return claim(
        rt,
        job_id,
        run_id=run_id,
        start=JobState.submitted,
        to=JobState.rendering,
        holder_alive=holder_alive,
        actor=ACTOR,
    )


def verify_consent(rt: Runtime, job_id: str, *, actor: str = ACTOR) -> JobState:
    """Fail closed unless a consent in force covers the job's purpose, channel and territory right now."""
    with unit_of_work(rt.sessions) as session:
        spec = load_job_spec(session, job_id)
        try:
            found = consent.verify(
                session,
                subject_id=spec.subject_id,
                purpose=spec.purpose,
                channel=spec.channel,
                territory=spec.territory,
                at=utcnow(),
            )
        except ConsentError as exc:
            reason, error = str(exc), type(exc).__name__
        else:
            job = jobs.record_consent(session, jobs.get_job(session, job_id), consent=found, actor=actor)
            return JobState(job.state)
    return refuse(rt, job_id, reason=reason, error=error, actor=actor)


def verify_model(rt: Runtime, job_id: str, *, actor: str = ACTOR) -> JobState:
    """Refuse (audited) unless the configured checkpoint is a registered, active model; no model is loaded.

    The checkpoint is known by its SHA-256: the configured one when set (loading enforces it), else
    the file's own. See `governance.models_registry`.
    """
    from governance.models_registry import renderable_problem
    from models.digest import sha256_file

    sha256 = rt.settings.mcnet_checkpoint_sha256 or sha256_file(rt.checkpoint_path)
    with unit_of_work(rt.sessions) as session:
        _, problem = renderable_problem(session, sha256.lower())
        if problem is None:
            return JobState(jobs.get_job(session, job_id).state)
    return refuse(rt, job_id, reason=problem, error="ModelNotRenderable", actor=actor)


def bind_likeness(rt: Runtime, job_id: str) -> JobState:
    """Refuse unless the portrait shows the person whose likeness reference is on file.

    Both photos must show exactly one usable face (`pipeline.faces.portrait.single_face`: one face, large
    enough, not cut by the border); otherwise the job is refused with what was found (faces, size in
    pixels) in the audit record. A group photo would otherwise bind to whoever is largest.
    """
    from pipeline.faces.portrait import FaceError, single_face
    from pipeline.images import load_image

    with unit_of_work(rt.sessions) as session:
        spec = load_job_spec(session, job_id)
    if spec.reference is None:
        return refuse(
            rt,
            job_id,
            reason=f"subject {spec.subject_id} has no likeness reference on file",
            error="LikenessReferenceMissing",
            actor=ACTOR,
        )
    folder = workspace(rt.workspace_root, job_id)
    portrait = load_image(
        fetch(rt.store, spec.portrait, local_name(folder, "portrait", spec.portrait)),
        max_pixels=rt.settings.max_image_pixels,
    )
    reference = load_image(
        fetch(rt.store, spec.reference, local_name(folder, "reference", spec.reference)),
        max_pixels=rt.settings.max_image_pixels,
    )
    for image, checked, where in (
        (reference, "reference", f"subject {spec.subject_id}'s likeness reference"),
        (portrait, "portrait", "the portrait"),
    ):
        try:
            single_face(image, where=where)
        except FaceError as exc:
            return refuse(
                rt,
                job_id,
                reason=f"job {job_id}: {exc}",
                error=type(exc).__name__,
                details={"checked": checked, **exc.details},
                actor=ACTOR,
            )
    result = rt.verifier.compare(reference, portrait)
    bound = rt.policy.identity.binding_distance.reject_above
    details = {**result.audit_details(), "reject_above": bound}
    with unit_of_work(rt.sessions) as session:
        jobs.record_binding(
            session, jobs.get_job(session, job_id), actor=ACTOR, distance=result.distance, details=details
        )
    if result.distance > bound:
        return refuse(
            rt,
            job_id,
            error="LikenessMismatch",
            reason=f"portrait of job {job_id} does not match subject {spec.subject_id}'s reference "
            f"(distance {result.distance:.3f} > {bound:g})",
            details={"checked": "binding", "distance": round(result.distance, 6), "threshold": bound},
            actor=ACTOR,
        )
    return JobState.rendering


REFUSED = JobState.refused.value  # what `render_video` returns instead of a key when it refused the job


def render_video(rt: Runtime, job_id: str, *, progress: Progress | None = None) -> str:
    """Animate the portrait with the driving video, upload the render to quarantine; returns its key.

    A driving video whose face cannot be followed (none at all, or too many frames without one) refuses
    the job, with what tracking found in the audit record; `REFUSED` is returned instead of a key.
    """
    from flows.runtime.concurrency import gpu_slot
    from pipeline.faces.portrait import FaceError, compose_output, crop_driving, prepare_portrait
    from pipeline.images import load_image
    from pipeline.storage.objects import object_key
    from pipeline.video.reader import VideoWriter, probe

    with unit_of_work(rt.sessions) as session:
        spec = load_job_spec(session, job_id)
    folder = workspace(rt.workspace_root, job_id)
    portrait_path = fetch(rt.store, spec.portrait, local_name(folder, "portrait", spec.portrait))
    driving_path = fetch(rt.store, spec.driving, local_name(folder, "driving", spec.driving))
    animator = rt.animator
    size = animator.config.image_size
    portrait = load_image(portrait_path, max_pixels=rt.settings.max_image_pixels)
    mode = rt.settings.output_mode
    info = probe(driving_path)
    out = folder / RENDER_NAME
    try:
        crop = prepare_portrait(portrait, size=size)
        # Face tracking is CPU work: plan the driving crops before taking the accelerator's slot.
        driving = crop_driving(
            driving_path,
            size=size,
            detect_every=rt.settings.driving_detect_every,
            max_missing_ratio=rt.policy.identity.missing_face_ratio.reject_above,
        )
    except FaceError as exc:
        checked = "driving video" if "driving video" in str(exc) else "portrait"
        refuse(
            rt,
            job_id,
            reason=f"job {job_id}: {exc}",
            error=type(exc).__name__,
            details={"checked": checked, **exc.details},
            actor=ACTOR,
        )
        return REFUSED
    with gpu_slot():
        with VideoWriter(
            out, fps=info.fps, size=output_size(portrait, size, mode), audio_from=driving_path
        ) as writer:
            written = 0
            for frame in animator.render(crop.crop, driving, seed=spec.seed):
                writer.write(compose_output(frame, mode=mode, portrait=portrait, box=crop.box))
                written += 1
                if progress is not None:
                    progress(written, info.frame_count)
    key = object_key(job_id, RENDER_NAME)
    stored = rt.store.put_file("quarantine", key, out, metadata=_render_metadata(spec, animator.fingerprint))
    with unit_of_work(rt.sessions) as session:
        jobs.record_render(
            session,
            jobs.get_job(session, job_id),
            actor=ACTOR,
            output_bucket=stored.bucket,
            output_key=stored.key,
            output_sha256=stored.sha256,
            seed=spec.seed,
            model_sha256=animator.fingerprint,
            inference_mode=animator.mode,
            details={"frames": written},
        )
    return stored.key


def output_size(portrait: np.ndarray, size: int, mode: str) -> tuple[int, int]:
    """(width, height) of the rendered video: the model's square, or the even-sized whole portrait."""
    if mode == "crop":
        return size, size
    height, width = portrait.shape[:2]
    return width - width % 2, height - height % 2


def _render_metadata(spec: JobSpec, model_sha256: str) -> dict[str, str]:
    return {
        "job-id": spec.job_id,
        "subject-id": spec.subject_id,
        "model-sha256": model_sha256,
        "seed": str(spec.seed),
    }


def evaluate_checks(rt: Runtime, job_id: str) -> JobState:
    """Score the render (identity fidelity, artifacts, motion, driver leak), let the policy decide, move the job."""
    from flows.render.checks import score_output
    from pipeline.images import load_image

    with unit_of_work(rt.sessions) as session:
        spec = load_job_spec(session, job_id)
        job = jobs.get_job(session, job_id)
        render_ref = _output_ref(job)
        binding = (job.check_scores or {}).get("binding_distance")
    if binding is None:  # fail closed: never judge an output whose portrait was not bound to the subject
        raise ValueError(f"job {job_id} has no likeness binding recorded: refusing to evaluate it")
    folder = workspace(rt.workspace_root, job_id)
    render_path = fetch(rt.store, render_ref, folder / RENDER_NAME)
    driving_path = fetch(rt.store, spec.driving, local_name(folder, "driving", spec.driving))
    portrait = load_image(
        fetch(rt.store, spec.portrait, local_name(folder, "portrait", spec.portrait)),
        max_pixels=rt.settings.max_image_pixels,
    )
    size = rt.animator.config.image_size
    mode = rt.settings.output_mode
    scored = score_output(
        portrait=portrait,
        output=render_path,
        driving=driving_path,
        policy=rt.policy,
        verifier=rt.verifier,
        size=size,
        mode=mode,
        every=rt.settings.fidelity_every,
        detect_every=rt.settings.driving_detect_every,
        binding_distance=float(binding),
        expected_size=output_size(portrait, size, mode),
    )
    scores, decision = scored.scores, scored.decision
    with unit_of_work(rt.sessions) as session:
        job = jobs.get_job(session, job_id)
        jobs.record_checks(
            session, job, actor=ACTOR, scores=scores, decision=decision, details=scored.details
        )
        target = JobState(job.state)  # a rejected job keeps the policy's reasons (`record_checks`)
    if target in FINAL_STATES or target == JobState.awaiting_review:
        clear_workspace(rt.workspace_root, job_id)  # approved jobs go on to publishing, which fetches anew
    return target


def _output_ref(job: Job) -> StoredRef:
    if not (job.output_bucket and job.output_key and job.output_sha256):
        raise ValueError(f"job {job.id} has no render recorded")
    return StoredRef(bucket=job.output_bucket, key=job.output_key, sha256=job.output_sha256)
