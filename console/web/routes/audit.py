"""The auditor's pages: search the log, a job's whole timeline, the chain's state, export."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy import or_, select
from starlette.background import BackgroundTask

from console.web.forms import optional_id, parse_moment
from console.web.pages import render
from console.web.state import console, current_user
from governance import jobs
from governance.audit import record as audit
from governance.errors import ValidationFailed
from governance.schema import AuditEvent, Consent, Job
from governance.uow import unit_of_work

router = APIRouter(prefix="/audit")


def _filter(
    subject_id: str | None,
    job_id: str | None,
    actor: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
) -> audit.AuditFilter:
    start, end = parse_moment(since, "since"), parse_moment(until, "until")
    if start and end and end <= start:
        raise ValidationFailed("audit search: until is not after since")
    return audit.AuditFilter(
        subject_id=optional_id(subject_id, "subject id"),
        job_id=optional_id(job_id, "job id"),
        actor=(actor or "").strip() or None,
        action=(action or "").strip() or None,
        since=start,
        until=end,
    )


def _rows(events: list[AuditEvent]) -> list[dict[str, object]]:
    return [
        {
            "seq": e.seq,
            "at": audit.format_time(e.occurred_at),
            "actor": e.actor,
            "action": e.action,
            "subject_id": e.subject_id,
            "job_id": e.job_id,
            "resource_type": e.resource_type or "",
            "resource_id": e.resource_id or "",
            "details": json.dumps(e.details, sort_keys=True, indent=1) if e.details else "",
            "fields": len(e.details) if isinstance(e.details, dict) else 0,
        }
        for e in events
    ]


@router.get("", name="audit_search", response_class=HTMLResponse)
def audit_search(
    request: Request,
    subject_id: str | None = None,
    job_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before: int | None = None,
) -> Response:
    """Newest matching events first, one page at a time (`before`: the page of events older than that
    sequence number, so pages stay stable while new events arrive); the filters are echoed into the form."""
    flt = _filter(subject_id, job_id, actor, action, since, until)
    limit = console(request).config.page_size
    with unit_of_work(console(request).runtime.sessions) as db:
        statement = flt.apply(select(AuditEvent))
        if before is not None:
            statement = statement.where(AuditEvent.seq < before)
        events = list(db.scalars(statement.order_by(AuditEvent.seq.desc()).limit(limit + 1)))
    rows = _rows(events[:limit])
    filters = {
        "subject_id": subject_id or "",
        "job_id": job_id or "",
        "actor": actor or "",
        "action": action or "",
        "since": since or "",
        "until": until or "",
    }
    query = urlencode({k: v for k, v in filters.items() if v})
    older = (
        f"?{urlencode({**{k: v for k, v in filters.items() if v}, 'before': rows[-1]['seq']})}"
        if len(events) > limit
        else None
    )
    newest = f"?{query}" if before is not None else None
    return render(
        request,
        "audit_search.html",
        rows=rows,
        filters=filters,
        limit=limit,
        export_query=query,
        older=older,
        newest=newest,
    )


@router.get("/jobs/{job_id}", name="audit_job_timeline", response_class=HTMLResponse)
def audit_job_timeline(request: Request, job_id: str) -> Response:
    """Everything on record about one job, in chain order: its batch, the consent it ran under
    (grant, amendments, revocation), the job's own events, its review and publication."""
    with unit_of_work(console(request).runtime.sessions) as db:
        job: Job = jobs.get_job(db, job_id)
        lineage_ids: list[str] = []
        if job.consent_id is not None:
            consent = db.get(Consent, job.consent_id)
            if consent is not None:
                lineage_ids = list(
                    db.scalars(select(Consent.id).where(Consent.lineage_id == consent.lineage_id))
                )
        # The job's own events, plus the batch's and the consent's that concern no particular job: other jobs'
        # events on the same batch or consent (their consent checks, say) belong to their own timelines.
        clauses = [
            AuditEvent.job_id == job.id,
            (AuditEvent.resource_type == "batch")
            & (AuditEvent.resource_id == job.batch_id)
            & AuditEvent.job_id.is_(None),
        ]
        if lineage_ids:
            clauses.append(
                (AuditEvent.resource_type == "consent")
                & AuditEvent.resource_id.in_(lineage_ids)
                & AuditEvent.job_id.is_(None)
            )
        events = list(db.scalars(select(AuditEvent).where(or_(*clauses)).order_by(AuditEvent.seq)))
        facts = {
            "job": job.id,
            "state": job.state.value,
            "batch": job.batch_id,
            "subject": job.subject_id,
            "use": f"{job.purpose}/{job.channel}/{job.territory}",
            "consent": job.consent_id or "—",
        }
        rows = _rows(events)
    return render(request, "audit_timeline.html", facts=facts, rows=rows, job_id=job_id)


@router.get("/chain", name="audit_chain", response_class=HTMLResponse)
def audit_chain(request: Request) -> Response:
    """Walk the whole hash chain now and say whether it holds, or which event breaks it."""
    with unit_of_work(console(request).runtime.sessions) as db:
        report = audit.verify_chain(db)
    return render(request, "audit_chain.html", report=report)


@router.get("/export", name="audit_export")
def audit_export(
    request: Request,
    format: Literal["jsonl", "csv"] = "jsonl",
    subject_id: str | None = None,
    job_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Response:
    """Download matching events with the chain head (governance's export), and record who exported what."""
    flt = _filter(subject_id, job_id, actor, action, since, until)
    state = console(request)
    folder = Path(state.upload_dir).parent / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", newline="", suffix=f".{format}", dir=folder, delete=False
    )
    path = Path(handle.name)
    try:
        with handle, unit_of_work(state.runtime.sessions) as db:
            summary = audit.export(db, handle, fmt=format, flt=flt)  # type: ignore[arg-type]  # a text file
        with unit_of_work(state.runtime.sessions) as db:
            audit.record_export(
                db,
                actor=current_user(request).email,
                resource_type="audit_log",
                details={
                    "format": format,
                    "count": summary.count,
                    "head_seq": summary.head_seq,
                    "filters": {
                        k: v
                        for k, v in {
                            "subject_id": flt.subject_id,
                            "job_id": flt.job_id,
                            "actor": flt.actor,
                            "action": flt.action,
                        }.items()
                        if v
                    },
                },
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    media = "application/x-ndjson" if format == "jsonl" else "text/csv"
    return FileResponse(
        path,
        media_type=media,
        filename=f"audit-{summary.head_seq or 0}.{format}",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
