"""`likeness publication list|show|download|takedown|sweep`: what is out there, a copy of it, and taking it down.

Reading the list or a record is an audited access (`access.read`): who looked at which publication.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from console.cli.context import ActorOption, CliError, acting_user, governance_command, out, show_time
from console.cli.errors import one_line_errors
from flows.audit.checkpoints import checkpoint_after
from flows.publish.delivery import PUBLISHING_ERRORS
from flows.runtime.root import make_store
from flows.takedown.steps import RETRY_HINT, take_down_due, takedown_publication
from governance import publications
from governance.access import record_read
from governance.enums import Role
from governance.uow import unit_of_work

app = typer.Typer(help="Published videos: list, show, download, take down.", no_args_is_help=True)
READERS = (Role.compliance, Role.admin, Role.auditor, Role.operator)


@app.command("list")
def list_(
    actor: ActorOption,
    all_: Annotated[bool, typer.Option("--all", help="Include taken-down publications.")] = False,
) -> None:
    """List publications, newest first."""
    with governance_command() as ctx, unit_of_work(ctx.sessions) as session:
        rows = publications.list_publications(session, active_only=not all_)
        record_read(
            session,
            actor_email=actor,
            roles=READERS,
            what="publication.list",
            resource_type="publication",
            details={"publications": [row.id for row in rows], "include_taken_down": all_},
        )
        table = Table("published", "watermark", "status")
        table.add_column("job", no_wrap=True, min_width=36)
        table.add_column("id", no_wrap=True, min_width=36)
        for row in rows:
            status = f"taken down {show_time(row.taken_down_at)}" if row.taken_down_at else "live"
            table.add_row(show_time(row.published_at), str(row.watermark_payload), status, row.job_id, row.id)
        out.print(table)


@app.command("show")
def show(publication_id: Annotated[str, typer.Argument(help="Publication id.")], actor: ActorOption) -> None:
    """Show one publication: where it lies, and the job, consent, model and reviewer behind it."""
    with governance_command() as ctx, unit_of_work(ctx.sessions) as session:
        record = publications.describe(session, publications.get_publication(session, publication_id))
        record_read(
            session,
            actor_email=actor,
            roles=READERS,
            what="publication.show",
            resource_type="publication",
            resource_id=record.publication_id,
            subject_id=record.subject_id,
            job_id=record.job_id,
        )
        table = Table("", "", show_header=False, title=f"publication {record.publication_id}")
        for label, value in (
            ("object", f"{record.bucket}/{record.object_key} (version {record.version_id or '-'})"),
            ("sha256", record.sha256),
            ("watermark", str(record.watermark_payload)),
            ("job", record.job_id),
            (
                "consent",
                f"{record.consent_id} v{record.consent_version}"
                + (" (revoked)" if record.consent_revoked else ""),
            ),
            ("model sha256", record.model_sha256 or "-"),
            ("reviewer", record.reviewer or "none (approved by policy)"),
            ("published", f"{show_time(record.published_at)} by {record.published_by}"),
            (
                "taken down",
                f"{show_time(record.taken_down_at)} by {record.taken_down_by}: {record.takedown_reason}"
                if record.taken_down_at
                else "no",
            ),
        ):
            table.add_row(label, value)
        out.print(table)


@app.command("download")
def download(
    publication_id: Annotated[str, typer.Argument(help="Publication id (see `likeness publication list`).")],
    actor: ActorOption,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write it (default <job id>.mp4).")
    ] = None,
) -> None:
    """Download a live publication, checked against its recorded SHA-256 (any signed-up user; audited)."""
    with governance_command() as ctx, one_line_errors(*PUBLISHING_ERRORS):
        user = acting_user(ctx, actor, tuple(Role), "publication.download")
        with unit_of_work(ctx.sessions) as session:
            record = publications.get_publication(session, publication_id)
            if record.taken_down_at is not None:
                raise CliError(
                    f"publication {publication_id} was taken down at {show_time(record.taken_down_at)}"
                )
            bucket, key, version, sha, job_id = (
                record.bucket,
                record.object_key,
                record.version_id,
                record.sha256,
                record.job_id,
            )
        target = output or Path(f"{job_id}{Path(key).suffix or '.mp4'}")
        if target.exists():
            raise CliError(f"{target} already exists: choose another --output")
        stored = make_store(ctx.settings).get_file(bucket, key, target, version_id=version)
        if stored.sha256 != sha:
            target.unlink(missing_ok=True)
            raise CliError(
                f"publication {publication_id}: stored sha256 {stored.sha256[:12]}… differs from the "
                f"recorded {sha[:12]}…; nothing written"
            )
        with unit_of_work(ctx.sessions) as session:
            publications.record_download(
                session, publication_id=publication_id, job_id=job_id, actor=user.email, sha256=sha
            )
        out.print(f"publication {publication_id} (job {job_id}) written to {target} (sha256 {sha})")


@app.command("takedown")
def takedown(
    publication_id: Annotated[str, typer.Argument(help="Publication id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
    actor: ActorOption,
    retain: Annotated[
        bool, typer.Option("--retain", help="Keep versions under legal hold instead of deleting.")
    ] = False,
) -> None:
    """Stop serving a publication (compliance or admin) and record who, when and why."""
    with governance_command() as ctx, one_line_errors(*PUBLISHING_ERRORS):
        report = takedown_publication(
            ctx.sessions,
            make_store(ctx.settings),
            publication_id=publication_id,
            reason=reason,
            actor_email=actor,
            retain=retain,
        )
        storage = report.storage
        out.print(
            f"publication {report.publication_id} (job {report.job_id}) taken down by {report.taken_down_by}: "
            f"{len(storage.deleted_versions)} version(s) deleted, {len(storage.held_versions)} held"
            + (", delete marker set" if storage.delete_marker else "")
        )
        checkpoint_after(ctx.settings, ctx.sessions, "publication.taken_down")


@app.command("sweep")
def sweep(actor: ActorOption) -> None:
    """Take down every publication no consent covers any more (revoked, narrowed, expired); what the
    `takedown` deployment runs every 10 minutes. Exit 1 while the storage still refuses some."""
    with governance_command() as ctx:
        acting_user(ctx, actor, publications.TAKEDOWN_ROLES, "publication.sweep")  # even when nothing is due
        report = take_down_due(ctx.sessions, make_store(ctx.settings), actor_email=actor)
        for line in report.lines():
            out.print(line, markup=False, highlight=False)
        out.print(f"{len(report.taken_down)} publication(s) taken down, {len(report.queued)} still queued")
        if report.taken_down:
            checkpoint_after(ctx.settings, ctx.sessions, "publication.taken_down")
        if report.queued:
            raise CliError(
                f"{len(report.queued)} takedown(s) still queued (storage refused them); {RETRY_HINT}"
            )
