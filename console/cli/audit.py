"""`likeness audit`: query, verify, checkpoint, prove and export the audit log (auditors, compliance, admins)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from console.cli.context import (
    ActorOption,
    CliError,
    acting_user,
    cli_errors,
    governance_command,
    out,
    parse_time,
    show_time,
)
from flows.audit.checkpoints import audit_verifier, stored_notes, write_checkpoint
from flows.runtime.root import Runtime
from governance.audit import record as audit
from governance.audit.bundle import is_bundle, verify_bundle, write_bundle
from governance.audit.ledger import LogReport, StoredNote, open_notes, prove_inclusion, verify_log
from governance.audit.note import Checkpoint, NoteError, NoteVerifier
from governance.audit.tree import ProofError
from governance.enums import Role
from governance.schema import AuditEvent
from governance.subjects import find_subject
from governance.uow import unit_of_work
from pipeline.errors import PipelineError

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
    return audit.AuditFilter(
        subject_id=subject_id, job_id=job, actor=by, action=action, since=start, until=end
    )


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
        with ctx.sessions() as session:
            flt = _filter(session, subject, job, by, action, since, until)
            events = audit.query(
                session,
                subject_id=flt.subject_id,
                job_id=flt.job_id,
                actor=flt.actor,
                action=flt.action,
                since=flt.since,
                until=flt.until,
                limit=limit,
            )
        table = Table("seq", "time", "actor", "action", "subject", "job", "resource", "details")
        for event in events:
            resource = f"{event.resource_type}:{event.resource_id}" if event.resource_type else "-"
            details = audit.canonical_json(event.details)
            table.add_row(
                str(event.seq),
                show_time(event.occurred_at),
                event.actor,
                event.action,
                event.subject_id or "-",
                event.job_id or "-",
                resource,
                details if len(details) <= 120 else details[:117] + "...",
            )
        out.print(table)
        out.print(f"{len(events)} event(s)")


@contextlib.contextmanager
def _checkpoint_errors() -> Iterator[None]:
    """Storage, key and note failures as one CLI line."""
    try:
        yield
    except (PipelineError, NoteError) as exc:
        raise CliError(str(exc)) from None


def _notes(ctx: Runtime) -> list[StoredNote]:
    with _checkpoint_errors():
        return stored_notes(ctx.settings)


@app.command("verify")
def verify(
    actor: ActorOption,
    anchor: Annotated[
        str | None, typer.Option(help="A chain head recorded earlier (an export's); must still be there.")
    ] = None,
    chain_only: Annotated[
        bool, typer.Option("--chain-only", help="Walk the hash chain only (no checkpoints).")
    ] = False,
) -> None:
    """Walk the chain and the Merkle tree, checking both against every stored signed checkpoint.

    Exits 1 naming the first event or checkpoint that disagrees; the check itself is audited.
    """
    with governance_command() as ctx:
        user = acting_user(ctx, actor, READERS, "audit.verify")
        if chain_only or anchor:
            with ctx.sessions() as session, session.begin():
                report: audit.ChainReport | LogReport = audit.verify_chain(session, anchor_hash=anchor)
            checkpoint_count, checkpoint = None, None
        else:
            notes = _notes(ctx)
            with _checkpoint_errors():
                verifier = audit_verifier(ctx.settings)
            with ctx.sessions() as session, session.begin():
                report = verify_log(session, notes, verifier)
            checkpoint_count, checkpoint = report.checkpoints, report.checkpoint
        with unit_of_work(ctx.sessions) as session:
            audit.record_verification(
                session,
                actor=user.email,
                ok=report.ok,
                details={
                    "ok": report.ok,
                    "checked": report.checked,
                    "head_seq": report.head_seq,
                    "broken_seq": report.broken_seq,
                    "problem": report.problem,
                    "checkpoints": checkpoint_count,
                    "checkpoint": checkpoint,
                },
            )
        if not report.ok:
            raise CliError(report.message)
        out.print(report.message)
        if checkpoint_count == 0:
            out.print("no checkpoint stored yet: write one with `likeness audit checkpoint`")


@app.command("checkpoint")
def checkpoint(actor: ActorOption) -> None:
    """Sign the current tree head and store it in the audit bucket (object lock, outside the database)."""
    with governance_command() as ctx:
        acting_user(ctx, actor, READERS, "audit.checkpoint")
        with _checkpoint_errors():
            result = write_checkpoint(ctx.settings, ctx.sessions)
        state = "written" if result.written else "already stored"
        out.print(f"checkpoint {state}: {result.key}, {result.size} events, root {result.root_b64}")
        typer.echo(result.note, nl=False)


def _latest(notes: list[StoredNote], verifier: NoteVerifier) -> tuple[StoredNote, Checkpoint]:
    opened, failure = open_notes(notes, verifier)
    if failure is not None:
        raise CliError(failure.message)
    if not opened or opened[-1][1].size == 0:
        raise CliError("no checkpoint stored yet: write one with `likeness audit checkpoint`")
    return opened[-1]


@app.command("prove")
def prove(
    event_id: Annotated[str, typer.Argument(help="The event's id.")],
    actor: ActorOption,
) -> None:
    """Print the event's inclusion proof (RFC 9162) against the latest signed checkpoint, as JSON."""
    with governance_command() as ctx:
        acting_user(ctx, actor, READERS, "audit.prove")
        notes = _notes(ctx)
        with _checkpoint_errors():
            verifier = audit_verifier(ctx.settings)
        note, cp = _latest(notes, verifier)
        with ctx.sessions() as session, session.begin():
            seq = session.scalar(select(AuditEvent.seq).where(AuditEvent.id == event_id))
            if seq is None:
                raise CliError(f"no audit event {event_id}")
            if seq > cp.size:
                raise CliError(
                    f"event #{seq} is newer than the latest checkpoint ({cp.size} events): "
                    "write one with `likeness audit checkpoint`"
                )
            try:
                proof = prove_inclusion(session, event_id=event_id, seq=seq, size=cp.size)
            except ProofError as exc:
                raise CliError(f"event #{seq}: {exc}") from None
        if proof.root != cp.root:
            raise CliError(
                f"the log's tree over {cp.size} events does not match checkpoint {note.label}: "
                "run `likeness audit verify`"
            )
        typer.echo(
            json.dumps(
                {
                    **proof.as_dict(),
                    "checkpoint": note.text,
                    "checkpoint_object": note.label,
                    "verifier_key": verifier.key_string(),
                },
                indent=2,
            )
        )


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
    bundle: Annotated[
        bool,
        typer.Option(
            "--bundle",
            help="Whole log + signed checkpoints + verifier key, checkable offline with verify-export.",
        ),
    ] = False,
) -> None:
    """Write matching events as JSONL or CSV, ending with the chain head (an anchor for `verify --anchor`)."""
    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("use jsonl or csv", param_hint="--format")
    if bundle and (fmt != "jsonl" or any((subject, job, by, action, since, until))):
        raise typer.BadParameter(
            "a bundle is the whole log as JSONL: no filters, no --format csv", param_hint="--bundle"
        )
    with governance_command() as ctx:
        user = acting_user(ctx, actor, READERS, "audit.export")
        if output.exists():
            raise CliError(f"{output} exists: not overwriting an export")
        notes = _notes(ctx) if bundle else []
        if bundle:
            with _checkpoint_errors():
                verifier = audit_verifier(ctx.settings)
        partial = output.with_name(output.name + ".partial")
        try:
            with (
                ctx.sessions() as session,
                session.begin(),
                partial.open("w", encoding="utf-8", newline="") as fh,
            ):
                if bundle:
                    count = write_bundle(session, fh, notes=notes, verifier=verifier)
                    head = audit.chain_head(session)
                    summary = audit.ExportSummary(count, *(head or (None, None)))
                else:
                    flt = _filter(session, subject, job, by, action, since, until)
                    summary = audit.export(session, fh, fmt=fmt, flt=flt)  # type: ignore[arg-type]
                fh.flush()
                os.fsync(fh.fileno())
            partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)
        with unit_of_work(ctx.sessions) as session:
            audit.record_export(
                session,
                actor=user.email,
                details={
                    "format": "bundle" if bundle else fmt,
                    "count": summary.count,
                    "head_seq": summary.head_seq,
                    "head_hash": summary.head_hash,
                    "file": output.name,
                    "checkpoints": len(notes),
                },
            )
        extra = f" and {len(notes)} checkpoint(s)" if bundle else ""
        out.print(
            f"{summary.count} event(s){extra} written to {output}; chain head #{summary.head_seq} {summary.head_hash}"
        )


@app.command("verify-export")
def verify_export(
    path: Annotated[Path, typer.Argument(help="A JSONL file or bundle written by `likeness audit export`.")],
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="The verifier key you trust (NAME+ID+KEY); "
            "default: the bundle's own, printed for comparison.",
        ),
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", envvar="LIKENESS_ACTOR", help="Not needed: the check is offline.")
    ] = None,
) -> None:
    """Re-check an export or bundle offline (no database, no network).

    A bundle: every event re-hashes and links, the Merkle tree is rebuilt, and every checkpoint must be
    signed by the key, match the tree at its size and be consistent with the next. A plain export:
    every event re-hashes; an unfiltered one also links.
    """
    with cli_errors():
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
            fh.seek(0)
            if is_bundle(first):
                report, verifier = verify_bundle(fh, trusted_key=key)
                if not report.ok:
                    raise CliError(f"bundle {path} fails: {report.message}")
                pinned = "the trusted key" if key else "the bundle's key (compare it with the one you trust)"
                out.print(f"bundle intact: {report.message}")
                out.print(f"checkpoints signed by {pinned}: {verifier.key_string() if verifier else '-'}")
                return
            if key:
                raise CliError(f"{path} is not a bundle (no checkpoints to check --key against)")
            chain = audit.verify_export(fh)
        if not chain.ok:
            where = f" at event #{chain.broken_seq}" if chain.broken_seq is not None else ""
            raise CliError(f"export {path} fails{where}: {chain.problem}")
        note = f" ({chain.problem})" if chain.problem else ""
        out.print(
            f"export intact: {chain.checked} events, chain head #{chain.head_seq} {chain.head_hash}{note}"
        )
