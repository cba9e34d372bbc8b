"""Content team pages: submit a batch (upload media or pick assets already stored), follow its jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from console.web.errors import BadInput, ConsoleError, PageNotFound
from console.web.forms import required_text
from console.web.pages import redirect, render
from console.web.state import ConsoleState, CurrentUser, console, current_user
from console.web.uploads import IMAGE, VIDEO, FileKind, has_file, save_upload, upload_folder
from flows.batch.status import batch_report
from flows.batch.submission import (
    CheckedInput,
    JobUse,
    SubmissionError,
    asset_id_for,
    check_input,
    check_jobs,
    upload_then_record,
)
from flows.runtime.errors import USER_FACING
from flows.runtime.retry import is_transient
from governance import assets, batches, consent, subjects
from governance.enums import AssetKind, Role
from governance.errors import ConsentError, GovernanceError, NotFound, ValidationFailed
from governance.schema import Asset, Batch, Job, ReviewDecision, User
from governance.uow import unit_of_work
from governance.vocabulary import CHANNELS, PURPOSES

router = APIRouter(prefix="/batches")
JOB_SLOTS = 3
_FLOW_ERRORS: tuple[type[Exception], ...] = tuple(
    kind for kind in USER_FACING if issubclass(kind, Exception) and not issubclass(kind, GovernanceError)
)
_REFUSALS: tuple[type[Exception], ...] = (ConsoleError, GovernanceError, *_FLOW_ERRORS)


# Who sees every batch (read only); everyone else with access sees the batches they requested.
SEES_ALL_BATCHES = frozenset({Role.auditor.value})


def _sees_all(me: CurrentUser) -> bool:
    return bool(me.roles & SEES_ALL_BATCHES)


@router.get("", name="batches", response_class=HTMLResponse)
def batches_page(request: Request) -> Response:
    """Recent batches (one's own, or all for the roles in `SEES_ALL_BATCHES`), newest first, with how many
    of their jobs are in each state."""
    limit = console(request).config.page_size
    me = current_user(request)
    with unit_of_work(console(request).runtime.sessions) as db:
        statement = select(Batch).order_by(Batch.created_at.desc()).limit(limit)
        if not _sees_all(me):
            statement = statement.where(Batch.requested_by == me.id)
        recent = list(db.scalars(statement))
        counts: dict[str, dict[str, int]] = {}
        for batch_id, state, n in db.execute(
            select(Job.batch_id, Job.state, func.count())
            .where(Job.batch_id.in_([b.id for b in recent]))
            .group_by(Job.batch_id, Job.state)
        ):
            counts.setdefault(batch_id, {})[state.value if hasattr(state, "value") else str(state)] = n
        people = {
            u.id: u.email
            for u in db.scalars(select(User).where(User.id.in_({b.requested_by for b in recent})))
        }
    rows = [
        {"batch": b, "requester": people.get(b.requested_by, b.requested_by), "states": counts.get(b.id, {})}
        for b in recent
    ]
    return render(request, "batches.html", rows=rows, everyone=_sees_all(me))


def _asset_label(asset: Asset) -> str:
    name = (asset.media_info or {}).get("original_name") if isinstance(asset.media_info, dict) else None
    return (
        f"{name or asset.object_key.rsplit('/', 2)[-2][:12] + '…'} ({asset.media_type or asset.kind.value}, "
        f"{asset.created_at.strftime('%Y-%m-%d')})"
    )


def _scopes(db: Any, subject_id: str) -> list[dict[str, Any]]:
    """The subject's consents in force (not revoked), as the batch form shows them."""
    return [
        {
            "id": c.id,
            "version": c.version,
            "purposes": c.purposes,
            "channels": c.channels,
            "territories": c.territories,
            "valid_from": c.valid_from,
            "valid_until": c.valid_until,
        }
        for c in consent.list_consents(db, subject_id=subject_id)
        if c.revoked_at is None
    ]


def _choices(request: Request, subject_id: str) -> dict[str, Any]:
    """What the form offers: subjects, and for the chosen subject its stored media and consent scope."""
    with unit_of_work(console(request).runtime.sessions) as db:
        subject_rows = [(s.id, f"{s.reference} — {s.display_name}") for s in subjects.list_subjects(db)]
        chosen = subject_id if subject_id in {sid for sid, _ in subject_rows} else ""
        portraits: list[tuple[str, str]] = []
        drivings: list[tuple[str, str]] = []
        scopes: list[dict[str, Any]] = []
        if chosen:
            recent = (
                select(Asset).where(Asset.subject_id == chosen).order_by(Asset.created_at.desc()).limit(200)
            )
            portraits = [
                (a.id, _asset_label(a)) for a in db.scalars(recent.where(Asset.kind == AssetKind.portrait))
            ]
            drivings = [
                (a.id, _asset_label(a))
                for a in db.scalars(recent.where(Asset.kind == AssetKind.driving_video))
            ]
            scopes = _scopes(db, chosen)
    return {
        "subject_choices": subject_rows,
        "chosen": chosen,
        "portraits": portraits,
        "drivings": drivings,
        "scopes": scopes,
        "purposes": sorted(PURPOSES),
        "channels": sorted(CHANNELS),
        "slots": range(JOB_SLOTS),
    }


@router.get("/new", name="batch_new", response_class=HTMLResponse)
def batch_new(request: Request, subject: str = "") -> Response:
    """The submission form: up to three jobs, each with uploaded or existing portrait and driving video.
    Choosing a subject first (`?subject=`) lists that subject's stored media and consent scope."""
    return render(request, "batch_new.html", values={}, warnings=[], error=None, **_choices(request, subject))


@dataclass
class _Slot:
    index: int
    subject_id: str
    purpose: str
    channel: str
    territory: str
    portrait_id: str
    portrait_file: UploadFile | None
    driving_id: str
    driving_file: UploadFile | None


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _upload(form: FormData, name: str) -> UploadFile | None:
    value = form.get(name)
    return value if isinstance(value, UploadFile) and has_file(value) else None  # type: ignore[arg-type]


def _slots(form: FormData) -> list[_Slot]:
    """The filled job slots; a slot with no subject is empty and skipped."""
    slots = []
    for i in range(JOB_SLOTS):
        p = f"job{i}_"
        if not _text(form, p + "subject"):
            continue
        slot = _Slot(
            i + 1,
            _text(form, p + "subject"),
            _text(form, p + "purpose"),
            _text(form, p + "channel"),
            _text(form, p + "territory").upper(),
            _text(form, p + "portrait_asset"),
            _upload(form, p + "portrait_file"),
            _text(form, p + "driving_asset"),
            _upload(form, p + "driving_file"),
        )
        for what, value in (
            ("purpose", slot.purpose),
            ("channel", slot.channel),
            ("territory", slot.territory),
        ):
            if not value:
                raise BadInput(f"job {slot.index}: choose a {what}")
        for what, asset_id, upload in (
            ("portrait", slot.portrait_id, slot.portrait_file),
            ("driving video", slot.driving_id, slot.driving_file),
        ):
            if bool(asset_id) == bool(upload):
                raise BadInput(
                    f"job {slot.index}: give either an uploaded {what} or an existing one, not "
                    f"{'both' if asset_id else 'neither'}"
                )
        slots.append(slot)
    if not slots:
        raise BadInput("the batch has no jobs: fill in at least one job")
    return slots


def _checked_upload(
    state: ConsoleState, upload: UploadFile, folder: Any, kind: AssetKind, file_kind: FileKind, *, where: str
) -> CheckedInput:
    """Spool an uploaded input and check it like `likeness batch submit` does; nothing is stored yet."""
    saved = save_upload(upload, folder, file_kind, field=where)  # type: ignore[arg-type]
    try:
        return check_input(state.runtime, saved.path, kind, where=where)
    except SubmissionError as exc:  # name the file as the person knows it, not our spool path
        raise SubmissionError(str(exc).replace(str(saved.path), repr(upload.filename))) from None


def _uncovered(state: ConsoleState, slots: list[_Slot]) -> list[str]:
    """For each job whose use no consent in force covers, why (governance's own words)."""
    problems = []
    with unit_of_work(state.runtime.sessions) as db:
        for slot in slots:
            try:
                consent.verify(
                    db,
                    subject_id=slot.subject_id,
                    purpose=slot.purpose,
                    channel=slot.channel,
                    territory=slot.territory,
                )
            except ConsentError as exc:
                problems.append(f"job {slot.index} ({slot.purpose}/{slot.channel}/{slot.territory}): {exc}")
    return problems


def _check_slots(state: ConsoleState, me_email: str, slots: list[_Slot]) -> None:
    """Before any file is read or stored: the requester's role, every subject and vocabulary term (the same
    checks as `likeness batch submit`), then stored media that are missing or someone else's."""
    check_jobs(
        state.runtime,
        [JobUse(slot.index, slot.subject_id, slot.purpose, slot.channel, slot.territory) for slot in slots],
        requested_by_email=me_email,
    )
    with unit_of_work(state.runtime.sessions) as db:
        for slot in slots:
            for what, asset_id in (("portrait", slot.portrait_id), ("driving video", slot.driving_id)):
                if not asset_id:
                    continue
                try:
                    asset = assets.get_asset(db, asset_id)
                except NotFound as exc:
                    raise NotFound(f"job {slot.index}: {exc}") from None
                if asset.subject_id != slot.subject_id:
                    raise BadInput(f"job {slot.index}: the stored {what} belongs to another subject")


def _submit(state: ConsoleState, me_id: str, me_email: str, name: str, slots: list[_Slot]) -> str:
    """Check every uploaded file first, then store them and record assets, batch and jobs in one unit of
    work, through the CLI's own path (`upload_then_record`): a refusal at any step leaves no object or row."""
    with upload_folder(state.upload_dir) as folder:
        files: dict[tuple[int, AssetKind], CheckedInput] = {}
        for slot in slots:
            for kind, file_kind, upload, what in (
                (AssetKind.portrait, IMAGE, slot.portrait_file, "portrait"),
                (AssetKind.driving_video, VIDEO, slot.driving_file, "driving video"),
            ):
                if upload is not None:
                    files[(slot.index, kind)] = _checked_upload(
                        state, upload, folder, kind, file_kind, where=f"job {slot.index} {what}"
                    )

        def record() -> str:
            # Only uploads need the object store: a batch of already stored media must not depend on it.
            bucket = state.runtime.store.bucket_name("inputs") if files else ""
            with unit_of_work(state.runtime.sessions) as db:
                specs = []
                for slot in slots:
                    chosen: dict[AssetKind, str] = {}
                    for kind, picked in (
                        (AssetKind.portrait, slot.portrait_id),
                        (AssetKind.driving_video, slot.driving_id),
                    ):
                        chosen[kind] = picked or asset_id_for(
                            db,
                            files[(slot.index, kind)],
                            bucket=bucket,
                            subject_id=slot.subject_id,
                            actor=me_email,
                        )
                    specs.append(
                        batches.NewJob(
                            subject_id=slot.subject_id,
                            portrait_asset_id=chosen[AssetKind.portrait],
                            driving_asset_id=chosen[AssetKind.driving_video],
                            purpose=slot.purpose,
                            channel=slot.channel,
                            territory=slot.territory,
                        )
                    )
                batch = batches.create_batch(
                    db,
                    name=name,
                    requested_by=me_id,
                    jobs=specs,
                    spec={"source": "console", "jobs": len(specs)},
                )
                return batch.id

        return upload_then_record(state.runtime, files.values(), record)


def _form_values(form: FormData) -> dict[str, str]:
    """The text fields as sent, to fill the form again after a refusal (files cannot be kept)."""
    return {key: value for key, value in form.multi_items() if isinstance(value, str) and key != "csrf_token"}


def _refusal_status(exc: Exception) -> int:
    if isinstance(exc, ConsoleError):
        return exc.status
    if isinstance(exc, GovernanceError):
        return 404 if isinstance(exc, NotFound) else 422 if isinstance(exc, ValidationFailed) else 409
    return 503 if is_transient(exc) else 422


@router.post("", name="batch_submit")
async def batch_submit(request: Request) -> Response:
    """Create the batch and its jobs in `submitted`; the nightly batch flow (or `likeness batch run`) renders
    them. A refusal shows the form again with what was typed; a use no consent covers is a warning that
    needs `accept_uncovered` to go ahead (its render would be refused)."""
    form = await request.form()
    values = _form_values(form)
    state = console(request)
    try:
        name = required_text(_text(form, "name"), "batch name", max_length=200)
        slots = _slots(form)
        me = current_user(request)
        await run_in_threadpool(_check_slots, state, me.email, slots)
        warnings = await run_in_threadpool(_uncovered, state, slots)
        if warnings and _text(form, "accept_uncovered") != "yes":
            return render(
                request,
                "batch_new.html",
                values=values,
                warnings=warnings,
                error=None,
                **_choices(request, values.get("subject", "")),
            )
        batch_id = await run_in_threadpool(_submit, state, me.id, me.email, name, slots)
    except _REFUSALS as exc:
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return render(
            request,
            "batch_new.html",
            status_code=_refusal_status(exc),
            values=values,
            warnings=[],
            error=message,
            **_choices(request, values.get("subject", "")),
        )
    return redirect(
        request, "batch_page", flash=f"batch {name} submitted with {len(slots)} job(s)", batch_id=batch_id
    )


@router.get("/{batch_id}", name="batch_page", response_class=HTMLResponse)
def batch_page(request: Request, batch_id: str) -> Response:
    """A batch's jobs: state, scores, outcome, reviewer and the reason they gave, where it was published,
    what went wrong. Only one's own batch, unless the role sees all."""
    state = console(request)
    me = current_user(request)
    with unit_of_work(state.runtime.sessions) as db:
        batch = db.get(Batch, batch_id)
        if batch is None or (batch.requested_by != me.id and not _sees_all(me)):
            raise PageNotFound(f"no batch {batch_id} among the batches you may see")
        decisions = db.scalars(
            select(ReviewDecision).join(Job, Job.id == ReviewDecision.job_id).where(Job.batch_id == batch_id)
        )
        review_reasons = {d.job_id: d.reason for d in decisions}
    report = batch_report(state.runtime, batch_id)
    return render(request, "batch.html", report=report, review_reasons=review_reasons)
