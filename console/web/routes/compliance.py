"""Compliance pages: subjects and their consents; grant (with evidence and reference photo), amend,
revoke (after a confirmation listing the publications it takes down), and a consent's version history.
Auditors may read these pages; only compliance may change anything."""

from __future__ import annotations

import logging
import mimetypes
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy import func, or_, select

from console.web.errors import PageNotFound
from console.web.forms import parse_moment, parse_terms, required_text
from console.web.mediafiles import cached_copy
from console.web.pages import redirect, render
from console.web.state import ConsoleState, console, current_user
from console.web.uploads import EVIDENCE, IMAGE, SavedUpload, has_file, save_upload, upload_folder
from flows.audit.checkpoints import checkpoint_after
from flows.consent.references import StoredUpload, check_reference_photo, discard_unreferenced, store_upload
from flows.jobs.data import StoredRef
from flows.takedown.steps import RETRY_HINT, WithdrawalReport, amend_consent, revoke_consent
from governance import consent, subjects
from governance.errors import ValidationFailed
from governance.publications import publications_for_consent
from governance.schema import Subject, User
from governance.types import utcnow
from governance.uow import unit_of_work
from governance.vocabulary import CHANNELS, PURPOSES, check_terms

logger = logging.getLogger(__name__)
router = APIRouter()
S3_SCHEME = "s3://"


def _store(state: ConsoleState, saved: SavedUpload, prefix: str, kind: str) -> tuple[str, str]:
    """Put an upload in the inputs bucket under a content-addressed key; returns (bucket, key)."""
    store = state.runtime.store
    key = f"{prefix}/{saved.sha256}/original{saved.path.suffix}"
    stored = store.put_file("inputs", key, saved.path, metadata={"kind": kind}, expected_sha256=saved.sha256)
    return stored.bucket, stored.key


def _vocabulary() -> dict[str, Any]:
    return {"purposes": sorted(PURPOSES), "channels": sorted(CHANNELS)}


@router.get("/subjects", name="subjects", response_class=HTMLResponse)
def subjects_page(request: Request, q: str = "", page: int = 1) -> Response:
    """Subjects matching `q` (reference or name, case-insensitive), one page at a time, with how many
    consents are in force."""
    size = console(request).config.page_size
    text = q.strip()[:100]
    number = max(1, min(page, 10_000))
    statement = select(Subject)
    if text:
        pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(
            or_(
                func.lower(Subject.reference).like(pattern, escape="\\"),
                func.lower(Subject.display_name).like(pattern, escape="\\"),
            )
        )
    with unit_of_work(console(request).runtime.sessions) as db:
        total = int(db.scalar(select(func.count()).select_from(statement.subquery())) or 0)
        found = list(
            db.scalars(statement.order_by(Subject.reference).offset((number - 1) * size).limit(size))
        )
        rows = []
        for subject in found:
            current = consent.list_consents(db, subject_id=subject.id)
            live = [c for c in current if c.revoked_at is None]
            rows.append({"subject": subject, "consents": len(live), "revoked": len(current) - len(live)})
    pages = max(1, -(-total // size))
    return render(request, "subjects.html", rows=rows, q=text, page=number, pages=pages, total=total)


@router.post("/subjects", name="subject_create")
def subject_create(
    request: Request, reference: str = Form(max_length=100), display_name: str = Form(max_length=200)
) -> Response:
    """Record a subject (governance checks the reference's shape and uniqueness)."""
    with unit_of_work(console(request).runtime.sessions) as db:
        subject = subjects.add_subject(
            db, reference=reference.strip(), display_name=display_name, created_by=current_user(request).id
        )
        subject_id = subject.id
    return redirect(
        request, "subject_page", flash=f"subject {reference.strip()} recorded", subject_id=subject_id
    )


@router.get("/subjects/{subject_id}", name="subject_page", response_class=HTMLResponse)
def subject_page(request: Request, subject_id: str) -> Response:
    """A subject, its reference photos and its consents (each with its current version)."""
    with unit_of_work(console(request).runtime.sessions) as db:
        subject = subjects.get_subject(db, subject_id)
        references = subjects.active_references(db, subject_id)
        consents = consent.list_consents(db, subject_id=subject_id)
    return render(request, "subject.html", subject=subject, references=references, consents=consents)


@router.get("/subjects/{subject_id}/consents/new", name="consent_grant_form", response_class=HTMLResponse)
def consent_grant_form(request: Request, subject_id: str) -> Response:
    """The grant form: scope, validity, evidence document and (if none on file) a reference photo."""
    with unit_of_work(console(request).runtime.sessions) as db:
        subject = subjects.get_subject(db, subject_id)
        has_reference = bool(subjects.active_references(db, subject_id))
    today = console(request).config.clock().astimezone(UTC).strftime("%Y-%m-%d")
    return render(
        request,
        "consent_grant.html",
        subject=subject,
        has_reference=has_reference,
        today=today,
        **_vocabulary(),
    )


def _scope_terms(purposes: list[str], channels: list[str], territories: str) -> list[str]:
    """Check the scope's words against governance's vocabulary; returns the territories as a list."""
    check_terms("purpose", purposes)
    check_terms("channel", channels)
    return check_terms("territory", [t.upper() for t in parse_terms(territories, "territories")])


def _validity(valid_from: str, valid_until: str) -> tuple[datetime, datetime | None]:
    start = parse_moment(valid_from, "valid from")
    if start is None:
        raise ValidationFailed("valid from is required")
    return start, parse_moment(valid_until, "valid until")


@router.post("/subjects/{subject_id}/consents", name="consent_grant")
def consent_grant(
    request: Request,
    subject_id: str,
    purposes: list[str] = Form(),
    channels: list[str] = Form(),
    territories: str = Form(max_length=1000),
    valid_from: str = Form(max_length=40),
    valid_until: str = Form("", max_length=40),
    notes: str = Form("", max_length=4000),
    evidence: UploadFile = File(),
    reference_photo: UploadFile | None = File(None),
) -> Response:
    """Check both uploads, store them, then grant the consent (and attach the photo) in one transaction.

    The reference photo must be a usable portrait (one face, large enough: `flows.consent.references`). Whatever
    refuses the grant, the uploads this request stored are removed again.
    """
    state = console(request)
    me = current_user(request)
    start, end = _validity(valid_from, valid_until)
    terms = _scope_terms(purposes, channels, territories)  # refuse bad words before touching storage
    consent.check_validity(start, end, now=utcnow())  # and an inverted or past validity
    with unit_of_work(state.runtime.sessions) as db:
        subjects.get_subject(db, subject_id)
    with upload_folder(state.upload_dir) as folder:
        doc = save_upload(evidence, folder, EVIDENCE, field="evidence")
        photo = (
            save_upload(reference_photo, folder, IMAGE, field="reference photo")
            if reference_photo is not None and has_file(reference_photo)
            else None
        )
        if photo is not None:
            check_reference_photo(state.runtime, photo.path, name=photo.original_name)
        stored: list[StoredUpload | None] = []
        try:
            evidence_ref = store_upload(
                state.runtime, doc.path, doc.sha256, prefix="evidence", kind="evidence"
            )
            stored.append(evidence_ref)
            photo_ref = (
                store_upload(state.runtime, photo.path, photo.sha256, prefix="references", kind="reference")
                if photo is not None
                else None
            )
            stored.append(photo_ref)
            with unit_of_work(state.runtime.sessions) as db:
                granted = consent.grant(
                    db,
                    subject_id=subject_id,
                    purposes=purposes,
                    channels=channels,
                    territories=terms,
                    valid_from=start,
                    valid_until=end,
                    evidence_path=doc.path,
                    evidence_sha256=doc.sha256,
                    evidence_key=f"{S3_SCHEME}{evidence_ref.bucket}/{evidence_ref.key}",
                    recorded_by=me.id,
                    notes=notes,
                )
                if photo is not None and photo_ref is not None:
                    subjects.add_reference(
                        db,
                        subject_id=subject_id,
                        bucket=photo_ref.bucket,
                        object_key=photo_ref.key,
                        sha256=photo.sha256,
                        created_by=me.id,
                    )
                consent_id = granted.id
        except BaseException:
            discard_unreferenced(
                state.runtime, stored
            )  # nothing half-written: a refused grant keeps no upload
            raise
    checkpoint_after(state.runtime.settings, state.runtime.sessions, "consent.granted")
    return redirect(
        request, "consent_page", flash=f"consent {consent_id} granted (version 1)", consent_id=consent_id
    )


@router.get("/consents/{consent_id}", name="consent_page", response_class=HTMLResponse)
def consent_page(request: Request, consent_id: str) -> Response:
    """Every version of a consent, oldest first, with who recorded each and why it changed."""
    with unit_of_work(console(request).runtime.sessions) as db:
        versions = consent.history(db, consent_id)
        subject = subjects.get_subject(db, versions[-1].subject_id)
        ids = {v.recorded_by for v in versions} | {v.revoked_by for v in versions if v.revoked_by}
        people = {u.id: u.email for u in db.scalars(select(User).where(User.id.in_(ids)))}
        live = publications_for_consent(db, consent_id, active_only=True)
    return render(
        request,
        "consent.html",
        versions=versions,
        current=versions[-1],
        subject=subject,
        people=people,
        live_publications=len(live),
    )


@router.get("/consents/{consent_id}/evidence", name="consent_evidence")
def consent_evidence(request: Request, consent_id: str) -> FileResponse:
    """The evidence document of this version, hash-checked against the consent's record.

    Two places are understood: `s3://bucket/key` (what the console stores) and `evidence/<file>` under the
    var folder (what `likeness consent grant` keeps). Anything else, or a file whose hash changed, is 404.
    """
    state = console(request)
    with unit_of_work(state.runtime.sessions) as db:
        version = consent.get_consent(db, consent_id)
        key, sha = version.evidence_key, version.evidence_sha256
    if key.startswith(S3_SCHEME) and "/" in key[len(S3_SCHEME) :]:
        bucket, object_key = key[len(S3_SCHEME) :].split("/", 1)
        path, media_type = cached_copy(state, StoredRef(bucket, object_key, sha))
    else:
        path, media_type = _local_evidence(state, consent_id, key, sha)
    return FileResponse(
        path,
        media_type=media_type,
        filename=f"evidence-{consent_id}{path.suffix}",
        content_disposition_type="attachment",
    )


def _local_evidence(state: ConsoleState, consent_id: str, key: str, sha: str) -> tuple[Path, str]:
    """A CLI-kept evidence file under `<var_dir>/evidence/`, refusing any path that leaves that folder."""
    folder = (Path(state.runtime.settings.var_dir) / "evidence").resolve()
    path = (Path(state.runtime.settings.var_dir) / key).resolve()
    if path.parent != folder or not path.is_file():
        raise PageNotFound(f"consent {consent_id}: evidence {key} is not available to the console")
    if consent.sha256_file(path) != sha:
        raise PageNotFound(f"consent {consent_id}: evidence {key} no longer matches its recorded sha256")
    return path, mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@router.get("/consents/{consent_id}/amend", name="consent_amend_form", response_class=HTMLResponse)
def consent_amend_form(request: Request, consent_id: str) -> Response:
    """The amend form, filled with the current version."""
    with unit_of_work(console(request).runtime.sessions) as db:
        current = consent.current_version(db, consent_id)
    return render(request, "consent_amend.html", current=current, **_vocabulary())


@router.post("/consents/{consent_id}/amend", name="consent_amend")
def consent_amend(
    request: Request,
    consent_id: str,
    reason: str = Form(max_length=2000),
    purposes: list[str] = Form(),
    channels: list[str] = Form(),
    territories: str = Form(max_length=1000),
    valid_until: str = Form("", max_length=40),
    notes: str = Form("", max_length=4000),
    evidence: UploadFile | None = File(None),
) -> Response:
    """Write the next version; new evidence, if given, is checked and stored like at grant."""
    state = console(request)
    me = current_user(request)
    why = required_text(reason, "reason")
    terms = _scope_terms(purposes, channels, territories)
    end = parse_moment(valid_until, "valid until")
    with upload_folder(state.upload_dir) as folder:
        doc = (
            save_upload(evidence, folder, EVIDENCE, field="evidence")
            if evidence and has_file(evidence)
            else None
        )
        new_key = None
        if doc is not None:
            bucket, key = _store(state, doc, "evidence", "evidence")
            new_key = f"{S3_SCHEME}{bucket}/{key}"
        change = amend_consent(
            state.runtime.sessions,
            lambda: state.runtime.store,
            consent_id=consent_id,
            actor_email=me.email,
            reason=why,
            purposes=purposes,
            channels=channels,
            territories=terms,
            valid_until=end,
            notes=notes,
            evidence_path=doc.path if doc else None,
            evidence_sha256=doc.sha256 if doc else None,
            evidence_key=new_key,
        )
    checkpoint_after(state.runtime.settings, state.runtime.sessions, "consent.amended")
    message = f"consent amended: version {change.version}"
    if change.report.taken_down or change.report.queued:
        message += f"; {_takedown_summary(change.report)}"
    return redirect(request, "consent_page", flash=message, consent_id=change.consent_id)


@router.get("/consents/{consent_id}/revoke", name="consent_revoke_form", response_class=HTMLResponse)
def consent_revoke_form(request: Request, consent_id: str) -> Response:
    """The confirmation: what revoking will take down, before anything happens."""
    with unit_of_work(console(request).runtime.sessions) as db:
        current = consent.current_version(db, consent_id)
        publications = publications_for_consent(db, consent_id, active_only=True)
    return render(request, "consent_revoke.html", current=current, publications=publications)


@router.post("/consents/{consent_id}/revoke", name="consent_revoke")
def consent_revoke(request: Request, consent_id: str, reason: str = Form(max_length=2000)) -> Response:
    """Revoke and take down every live publication made under the consent (`flows.takedown.steps`, as the CLI).

    The revocation stands even when the storage is down; the takedowns then stay queued, the message
    says which, and the takedown sweep retries them until done.
    """
    state = console(request)
    why = required_text(reason, "reason")
    change = revoke_consent(
        state.runtime.sessions,
        lambda: state.runtime.store,
        consent_id=consent_id,
        actor_email=current_user(request).email,
        reason=why,
    )
    checkpoint_after(state.runtime.settings, state.runtime.sessions, "consent.revoked")
    message = f"consent {change.consent_id} revoked; {_takedown_summary(change.report)}"
    return redirect(request, "consent_page", flash=message, consent_id=change.consent_id)


def _takedown_summary(report: WithdrawalReport) -> str:
    """The flash message's account of the takedowns: how many, and each publication and where."""
    text = f"{len(report.taken_down)} publication(s) taken down"
    if report.queued:
        text += f"; TAKEDOWN QUEUED for {len(report.queued)} (storage unavailable): {RETRY_HINT}"
    lines = report.lines()
    return text + (" — " + " | ".join(lines) if lines else "")
