"""The reviewer's pages: the queue of flagged jobs, one job's evidence, and the decision."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from console.web.forms import required_text
from console.web.motion_plot import motion_context
from console.web.pages import redirect, render
from console.web.plots import identity_bounds, identity_svg, per_frame_series
from console.web.state import console, current_user
from flows.publish.queue import publish_status, retry_publish
from flows.review.queue import pending_reviews, review_item
from flows.review.steps import apply_decision
from governance import assets, consent, jobs, review, subjects
from governance.errors import ConsentError, GovernanceError
from governance.schema import Batch, Consent, Job, User
from governance.uow import unit_of_work

router = APIRouter(prefix="/review")
PAST = {"approve": "approved", "reject": "rejected"}


@router.get("", name="review_queue", response_class=HTMLResponse)
def review_queue(request: Request) -> Response:
    """Every job awaiting review, longest waiting first; your own batches are marked (four eyes)."""
    items = pending_reviews(console(request).runtime)
    me = current_user(request)
    return render(
        request,
        "review_queue.html",
        items=items,
        mine={i.job_id for i in items if i.requested_by == me.email},
    )


def _score_rows(scores: dict[str, Any], rules: dict[str, Any]) -> list[dict[str, Any]]:
    """Each score beside its policy bounds, with where it falls (ok, review, reject)."""
    bounds: dict[str, dict[str, float]] = {
        **(rules.get("identity") or {}),
        **(rules.get("artifacts") or {}),
        **(rules.get("motion") or {}),
        **(rules.get("leak") or {}),
    }
    same = (rules.get("leak") or {}).get("driver_same_person_distance")
    if isinstance(same, int | float) and float(scores.get("driver_portrait_distance", same + 1)) <= same:
        bounds.pop("leak_margin", None)  # the driver is the subject: the policy does not judge the margin
    rows = []
    for name, value in scores.items():
        bound = bounds.get(name) or {}
        status, limit = "ok", ""
        if isinstance(value, bool):
            status = "ok" if value else "reject"
            limit = "must be true"
        elif "review_above" in bound:
            limit = f"review > {bound['review_above']:g}, reject > {bound['reject_above']:g}"
            status = (
                "reject"
                if value > bound["reject_above"]
                else "review"
                if value > bound["review_above"]
                else "ok"
            )
        elif "review_below" in bound:
            limit = f"review < {bound['review_below']:g}, reject < {bound['reject_below']:g}"
            status = (
                "reject"
                if value < bound["reject_below"]
                else "review"
                if value < bound["review_below"]
                else "ok"
            )
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        rows.append({"name": name, "value": shown, "limit": limit, "status": status})
    return rows


def _output_fps(check: Any) -> float | None:
    """The render's frame rate as the artifact check measured it (to turn frame numbers into seconds)."""
    fps = (((check.details or {}).get("artifacts") or {}).get("checks") or {}).get("fps", {}) if check else {}
    value = (fps.get("detail") or {}).get("fps") if isinstance(fps, dict) else None
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _consent_standing(db: Session, job: Job) -> dict[str, Any]:
    """The consent the job was rendered under, and what covers the job's use right now."""
    used = db.get(Consent, job.consent_id) if job.consent_id else None
    standing: dict[str, Any] = {"used": used, "now": None, "problem": None}
    try:
        standing["now"] = consent.verify(
            db, subject_id=job.subject_id, purpose=job.purpose, channel=job.channel, territory=job.territory
        )
    except ConsentError as exc:
        standing["problem"] = str(exc)
    return standing


DEFAULT_FPS = 25.0


def _frame_rate(db: Session, job: Job) -> float:
    """Frames per second for the player's frame steps and the plot's frame-to-time mapping: the driving
    video's, as recorded at submission (the render keeps its timing), else 25."""
    try:
        info = assets.get_asset(db, job.driving_asset_id).media_info or {}
    except GovernanceError:
        return DEFAULT_FPS
    fps = info.get("fps") if isinstance(info, dict) else None
    return float(fps) if isinstance(fps, int | float) and 1 <= fps <= 240 else DEFAULT_FPS


@router.get("/jobs/{job_id}", name="review_job", response_class=HTMLResponse)
def review_job(request: Request, job_id: str) -> Response:
    """The render beside its portrait and driving video, the identity plot, scores against thresholds,
    the consent in force, and the decision form (or the decision already taken)."""
    state = console(request)
    item = review_item(state.runtime, job_id)
    me = current_user(request)
    with unit_of_work(state.runtime.sessions) as db:
        job = jobs.get_job(db, job_id)
        check = jobs.latest_check(db, job_id)
        rules = ((check.thresholds or {}).get("rules") or {}) if check else {}
        identity = (check.details or {}).get("identity") if check else None
        distances, frames = per_frame_series(identity)
        faceless = identity.get("missing_frames") if isinstance(identity, dict) else None
        bounds = identity_bounds(rules, list(check.reasons or []) if check else [], identity)
        fps = _frame_rate(db, job)
        references = [r.id for r in subjects.active_references(db, job.subject_id)]
        standing = _consent_standing(db, job)
        decision = review.get_decision(db, job_id)
        decided_by = db.get(User, decision.reviewer_id).email if decision else None  # type: ignore[union-attr]
        batch = db.get(Batch, job.batch_id)
        own_batch = batch is not None and batch.requested_by == me.id
        score_rows = _score_rows(dict(job.check_scores or {}), rules)
        motion = motion_context(check.details if check else None, rules, fps=_output_fps(check))
    return render(
        request,
        "review_job.html",
        item=item,
        job=job,
        score_rows=score_rows,
        policy_version=job.policy_version,
        plot=identity_svg(distances, bounds=bounds, frames=frames),
        bounds=bounds,
        fps=fps,
        references=references,
        faceless=[int(f) for f in faceless or [] if isinstance(f, int)],
        standing=standing,
        decision=decision,
        decided_by=decided_by,
        own_batch=own_batch,
        past=PAST,
        has_output=bool(job.output_key),
        publishing=publish_status(state.runtime, job_id),
        **motion,
    )


@router.post("/jobs/{job_id}/decision", name="review_decide")
def review_decide(
    request: Request,
    job_id: str,
    verdict: Literal["approve", "reject"] = Form(),
    reason: str = Form(max_length=2000),
) -> Response:
    """Apply the verdict through `flows.review.steps.apply_decision`, the same path as `likeness review`:
    governance checks role, four eyes and decided-once; an approval publishes right away."""
    state = console(request)
    me = current_user(request)
    result = apply_decision(
        rt=state.runtime,
        job_id=job_id,
        reviewer_email=me.email,
        verdict=verdict,
        reason=required_text(reason, "reason"),
        publish=state.config.publish_on_approval,
    )
    message = f"job {job_id}: {PAST[result.verdict]}; now {result.state}"
    if result.publishing is not None:
        message += "; publishing queued"
    return redirect(request, "review_job", flash=message, job_id=job_id)


@router.post("/jobs/{job_id}/publish", name="review_retry_publish")
def review_retry_publish(
    request: Request, job_id: str, back: Literal["job", "batch"] = Form("job")
) -> Response:
    """Queue a failed publication again (`flows.publish.queue.retry_publish`); returns at once, to the
    job's page or (from the batch page) the batch's."""
    state = console(request)
    me = current_user(request)
    retry_publish(state.runtime, job_id, requested_by=me.email)
    flash = f"job {job_id}: publishing queued again"
    if back == "batch":
        with unit_of_work(state.runtime.sessions) as db:
            batch_id = jobs.get_job(db, job_id).batch_id
        return redirect(request, "batch_page", flash=flash, batch_id=batch_id)
    return redirect(request, "review_job", flash=flash, job_id=job_id)
