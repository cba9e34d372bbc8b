"""`likeness audit`: query, verify and export the hash-chained audit log (auditors, compliance, admins)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from console.context import ActorOption, CliError, acting_user, governance_command, out, parse_time, show_time
from governance import audit
from governance.enums import Role
from governance.subjects import find_subject
from governance.uow import unit_of_work

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
READERS = (Role.auditor, Role.compliance, Role.admin)

SubjectFilter = Annotated[str | None, typer.Option("--subject", help="Subject id or reference.")]
JobFilter = Annotated[str | None, typer.Option("--job", help="Job id.")]
ByFilter = Annotated[str | None, typer.Option("--by", help="Who acted (email or system:...).")]
ActionFilter = Annotated[str | None, typer.Option("--action", help="Action, or prefix like consent.*")]
SinceFilter = Annotated[str | None, typer.Option("--since", help="From (ISO, inclusive).")]
UntilFilter = Annotated[str | None, typer.Option("--until", help="To (ISO, exclusive).")]


def _filter(session, subject, job, by, action, since, until) -> audit.AuditFilter:  # type: ignore[no-untyped-def]
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    if start and end and end <= start:
        raise CliError("--until is not after --since")
    subject_id = find_subject(session, subject).id if subject else None
    return audit.AuditFilter(subject_id=subject_id, job_id=job, actor=by, action=action, since=start, until=end)


@app.command("query")
def query(
    actor: ActorOption,
    subject: SubjectFilter = None,
    job: JobFilter = None,
    by: ByFilter = None,
    action: ActionFilter = None,
    since: SinceFilter = None,
    until: UntilFilter = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 200,
) -> None:
    """Show events matching every filter given, oldest first."""
    with governance_command() as ctx:
        acting_user(ctx, actor, READERS, "audit.query")
        with ctx.session_factory() as session:
            flt = _filter(session, subject, job, by, action, since, until)
            events = audit.query(session, subject_id=flt.subject_id, job_id=flt.job_id, actor=flt.actor,
                                 action=flt.action, since=flt.since, until=flt.until, limit=limit)  # fmt: skip
        table = Table("seq", "time", "actor", "action", "subject", "job", "resource", "details")
        for event in events:
            resource = f"{event.resource_type}:{event.resource_id}" if event.resource_type else "-"
            details = audit.canonical_json(event.details)
            table.add_row(str(event.seq), show_time(event.occurred_at), event.actor, event.action,
                          event.subject_id or "-", event.job_id or "-", resource,
                          details if len(details) <= 120 else details[:117] + "...")  # fmt: skip
        out.print(table)
        out.print(f"{len(events)} event(s)")


@app.command("verify")
def verify(
    actor: ActorOption,
    anchor: Annotated[str | None, typer.Option(help="A chain head recorded earlier (an export's); must still be there.")] = None,
) -> None:
    """Walk the whole chain; exit 1 naming the first event that breaks it. The check itself is audited."""
    with governance_command() as ctx:
        user = acting_user(ctx, actor, READERS, "audit.verify")
        with ctx.session_factory() as session, session.begin():
            report = audit.verify_chain(session, anchor_hash=anchor)
        with unit_of_work(ctx.session_factory) as session:
            audit.record(
                session, action="audit.verified" if report.ok else "audit.verify_failed", actor=user.email,
                details={"ok": report.ok, "checked": report.checked, "head_seq": report.head_seq,
                         "broken_seq": report.broken_seq, "problem": report.problem},
            )  # fmt: skip
        if not report.ok:
            raise CliError(report.message)
        out.print(report.message)


@app.command("export")
def export(
    actor: ActorOption,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (not overwritten).")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    subject: SubjectFilter = None,
    job: JobFilter = None,
    by: ByFilter = None,
    action: ActionFilter = None,
    since: SinceFilter = None,
    until: UntilFilter = None,
) -> None:
    """Write matching events as JSONL or CSV, ending with the chain head (an anchor for `verify --anchor`)."""
    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("use jsonl or csv", param_hint="--format")
    with governance_command() as ctx:
        user = acting_user(ctx, actor, READERS, "audit.export")
        if output.exists():
            raise CliError(f"{output} exists: not overwriting an export")
        partial = output.with_name(output.name + ".partial")
        try:
            with ctx.session_factory() as session, session.begin(), partial.open("w", encoding="utf-8", newline="") as fh:
                flt = _filter(session, subject, job, by, action, since, until)
                summary = audit.export(session, fh, fmt=fmt, flt=flt)  # type: ignore[arg-type]
                fh.flush()
                os.fsync(fh.fileno())
            partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)
        with unit_of_work(ctx.session_factory) as session:
            audit.record(session, action="audit.exported", actor=user.email,
                         details={"format": fmt, "count": summary.count, "head_seq": summary.head_seq,
                                  "head_hash": summary.head_hash, "file": output.name})  # fmt: skip
        out.print(f"{summary.count} event(s) written to {output}; chain head #{summary.head_seq} {summary.head_hash}")


@app.command("verify-export")
def verify_export(
    path: Annotated[Path, typer.Argument(help="A JSONL file written by `likeness audit export`.")],
    actor: ActorOption,
) -> None:
    """Re-check an export away from the live chain: every event re-hashes; an unfiltered one also links."""
    with governance_command() as ctx:
        acting_user(ctx, actor, READERS, "audit.verify_export")
        with path.open(encoding="utf-8") as fh:
            report = audit.verify_export(fh)
        if not report.ok:
            where = f" at event #{report.broken_seq}" if report.broken_seq is not None else ""
            raise CliError(f"export {path} fails{where}: {report.problem}")
        note = f" ({report.problem})" if report.problem else ""
        out.print(f"export intact: {report.checked} events, chain head #{report.head_seq} {report.head_hash}{note}")
