"""Content team pages: submit a batch (upload media or pick assets already stored), follow its jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from console.web.errors import BadInput
from console.web.forms import required_text
from console.web.pages import redirect, render
from console.web.state import ConsoleState, console, current_user
from console.web.uploads import IMAGE, VIDEO, FileKind, has_file, save_upload, upload_folder
from flows.status import batch_report
from flows.submission import SubmissionError, check_input, input_key
from governance import assets, batches, subjects
from governance.enums import AssetKind
from governance.schema import Asset, Batch, Job, User
from governance.uow import unit_of_work
from governance.vocabulary import CHANNELS, PURPOSES

router = APIRouter(prefix="/batches")
JOB_SLOTS = 3


@router.get("", name="batches", response_class=HTMLResponse)
def batches_page(request: Request) -> Response:
    """Recent batches, newest first, with how many of their jobs are in each state."""
    limit = console(request).config.page_size
    with unit_of_work(console(request).runtime.sessions) as db:
        recent = list(db.scalars(select(Batch).order_by(Batch.created_at.desc()).limit(limit)))
        counts: dict[str, dict[str, int]] = {}
        for batch_id, state, n in db.execute(
            select(Job.batch_id, Job.state, func.count()).where(Job.batch_id.in_([b.id for b in recent]))
            .group_by(Job.batch_id, Job.state)
        ):
            counts.setdefault(batch_id, {})[state.value if hasattr(state, "value") else str(state)] = n
        people = {u.id: u.email for u in db.scalars(select(User).where(User.id.in_({b.requested_by for b in recent})))}
    rows = [{"batch": b, "requester": people.get(b.requested_by, b.requested_by), "states": counts.get(b.id, {})}
            for b in recent]
    return render(request, "batches.html", rows=rows)


def _choices(request: Request) -> dict[str, Any]:
    with unit_of_work(console(request).runtime.sessions) as db:
        subject_rows = [(s.id, f"{s.reference} — {s.display_name}") for s in subjects.list_subjects(db)]
        recent = select(Asset).order_by(Asset.created_at.desc()).limit(200)
        portraits = [(a.id, f"{a.object_key.rsplit('/', 2)[-2][:12]}… ({a.media_type})")
                     for a in db.scalars(recent.where(Asset.kind == AssetKind.portrait))]
        drivings = [(a.id, f"{a.object_key.rsplit('/', 2)[-2][:12]}… ({a.media_type})")
                    for a in db.scalars(recent.where(Asset.kind == AssetKind.driving_video))]
    return {"subject_choices": subject_rows, "portraits": portraits, "drivings": drivings,
            "purposes": sorted(PURPOSES), "channels": sorted(CHANNELS), "slots": range(JOB_SLOTS)}


@router.get("/new", name="batch_new", response_class=HTMLResponse)
def batch_new(request: Request) -> Response:
    """The submission form: up to three jobs, each with uploaded or existing portrait and driving video."""
    return render(request, "batch_new.html", **_choices(request))


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
        slot = _Slot(i + 1, _text(form, p + "subject"), _text(form, p + "purpose"), _text(form, p + "channel"),
                     _text(form, p + "territory").upper(), _text(form, p + "portrait_asset"),
                     _upload(form, p + "portrait_file"), _text(form, p + "driving_asset"),
                     _upload(form, p + "driving_file"))
        for what, asset_id, upload in (("portrait", slot.portrait_id, slot.portrait_file),
                                       ("driving video", slot.driving_id, slot.driving_file)):
            if bool(asset_id) == bool(upload):
                raise BadInput(f"job {slot.index}: give either an uploaded {what} or an existing one, not "
                               f"{'both' if asset_id else 'neither'}")
        slots.append(slot)
    if not slots:
        raise BadInput("the batch has no jobs: fill in at least one job")
    return slots


def _stored_asset(state: ConsoleState, upload: UploadFile, folder: Any, kind: AssetKind, file_kind: FileKind,
                  *, where: str, subject_id: str, actor: str) -> str:
    """Check an uploaded input like `likeness batch submit` does, store it by content, register it once."""
    saved = save_upload(upload, folder, file_kind, field=where)  # type: ignore[arg-type]
    try:
        checked = check_input(state.runtime, saved.path, kind, where=where)
    except SubmissionError as exc:  # name the file as the person knows it, not our spool path
        raise SubmissionError(str(exc).replace(str(saved.path), repr(upload.filename))) from None
    key = input_key(checked.sha256, checked.path)
    state.runtime.store.put_file("inputs", key, checked.path, metadata={"kind": kind.value},
                                 expected_sha256=checked.sha256)
    bucket = state.runtime.store.bucket_name("inputs")
    with unit_of_work(state.runtime.sessions) as db:
        for existing in assets.find_by_sha256(db, checked.sha256, kind=kind):
            if existing.subject_id == subject_id and existing.bucket == bucket:
                return existing.id
        asset = assets.register_asset(db, kind=kind, bucket=bucket, object_key=key, sha256=checked.sha256,
                                      size_bytes=checked.size, actor=actor, media_type=checked.media_type,
                                      media_info=dict(checked.media_info), subject_id=subject_id)
        return asset.id


def _submit(state: ConsoleState, me_id: str, me_email: str, name: str, slots: list[_Slot]) -> str:
    with unit_of_work(state.runtime.sessions) as db:  # unknown subjects fail before any upload is stored
        for slot in slots:
            subjects.get_subject(db, slot.subject_id)
    specs = []
    with upload_folder(state.upload_dir) as folder:
        for slot in slots:
            where = f"job {slot.index}"
            portrait = slot.portrait_id or _stored_asset(
                state, slot.portrait_file, folder, AssetKind.portrait, IMAGE, where=f"{where} portrait",  # type: ignore[arg-type]
                subject_id=slot.subject_id, actor=me_email)
            driving = slot.driving_id or _stored_asset(
                state, slot.driving_file, folder, AssetKind.driving_video, VIDEO, where=f"{where} driving video",  # type: ignore[arg-type]
                subject_id=slot.subject_id, actor=me_email)
            specs.append(batches.JobSpec(subject_id=slot.subject_id, portrait_asset_id=portrait,
                                         driving_asset_id=driving, purpose=slot.purpose, channel=slot.channel,
                                         territory=slot.territory))
    with unit_of_work(state.runtime.sessions) as db:
        batch = batches.create_batch(db, name=name, requested_by=me_id, jobs=specs,
                                     spec={"source": "console", "jobs": len(specs)})
        return batch.id


@router.post("", name="batch_submit")
async def batch_submit(request: Request) -> Response:
    """Create the batch and its jobs in `submitted`; the nightly batch flow (or `likeness batch run`) renders them."""
    form = await request.form()
    name = required_text(_text(form, "name"), "batch name", max_length=200)
    slots = _slots(form)
    me = current_user(request)
    batch_id = await run_in_threadpool(_submit, console(request), me.id, me.email, name, slots)
    return redirect(request, "batch_page", flash=f"batch {name} submitted with {len(slots)} job(s)", batch_id=batch_id)


@router.get("/{batch_id}", name="batch_page", response_class=HTMLResponse)
def batch_page(request: Request, batch_id: str) -> Response:
    """A batch's jobs: state, scores, outcome, reviewer, where it was published, what went wrong."""
    report = batch_report(console(request).runtime, batch_id)
    return render(request, "batch.html", report=report)
