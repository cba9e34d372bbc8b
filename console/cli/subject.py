"""`likeness subject`: the people whose likeness may be used (compliance records them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from console.cli.context import (
    ActorOption,
    CliError,
    acting_user,
    governance_command,
    out,
    show_time,
    storage_errors,
)
from governance import subjects
from governance.enums import Role
from governance.uow import unit_of_work
from governance.users import get_user_by_email

app = typer.Typer(help="Subjects.", no_args_is_help=True)
READERS = (Role.compliance, Role.admin, Role.auditor, Role.operator)


@app.command("add")
def add(
    reference: Annotated[str, typer.Option(help="Your organisation's id for the person (unique).")],
    name: Annotated[str, typer.Option(help="Display name.")],
    actor: ActorOption,
) -> None:
    """Record a subject (compliance or admin)."""
    with governance_command() as ctx, unit_of_work(ctx.sessions) as session:
        subject = subjects.add_subject(
            session, reference=reference, display_name=name, created_by=get_user_by_email(session, actor).id
        )
        out.print(f"subject {subject.reference} added (id {subject.id})")


@app.command("list")
def list_subjects(actor: ActorOption) -> None:
    """List subjects."""
    with governance_command() as ctx:
        acting_user(ctx, actor, READERS, "subject.list")
        with ctx.sessions() as session:
            rows = subjects.list_subjects(session)
        table = Table("reference", "name", "created", "id")
        for subject in rows:
            table.add_row(subject.reference, subject.display_name, show_time(subject.created_at), subject.id)
        out.print(table)


references = typer.Typer(
    help="A subject's reference photos (what renders are checked against).", no_args_is_help=True
)
app.add_typer(references, name="reference")


@references.command("add")
def reference_add(
    subject: Annotated[str, typer.Argument(help="Subject id or reference.")],
    photo: Annotated[
        Path, typer.Argument(help="The photo: JPEG or PNG, inside LIKENESS_ALLOWED_INPUT_DIRS.")
    ],
    actor: ActorOption,
) -> None:
    """Store a reference photo for a subject, as the console does (compliance or admin)."""
    from flows.batch.submission import SubmissionError, check_input
    from governance.enums import AssetKind

    with governance_command() as ctx:
        acting_user(ctx, actor, (Role.compliance, Role.admin), "subject.add_reference")
        try:  # a photo outside the allowed folders, unreadable or oversized is refused before anything
            checked = check_input(ctx, photo, AssetKind.portrait, where="reference photo")
        except SubmissionError as exc:
            raise CliError(str(exc).strip().splitlines()[0]) from None
        safe, digest = checked.path, checked.sha256
        with safe.open("rb") as handle:
            head = handle.read(8)
        suffix = (
            ".png" if head.startswith(b"\x89PNG") else ".jpg" if head.startswith(b"\xff\xd8\xff") else None
        )
        if suffix is None:
            raise CliError(f"{photo}: a reference photo must be a JPEG or PNG file")
        with unit_of_work(ctx.sessions) as session:  # an unknown subject is refused before storing
            subject_id = subjects.find_subject(session, subject).id
        with storage_errors():
            stored = ctx.store.put_file(
                "inputs",
                f"references/{digest}/original{suffix}",
                safe,
                metadata={"kind": "reference"},
                expected_sha256=digest,
            )
        with unit_of_work(ctx.sessions) as session:
            reference = subjects.add_reference(
                session,
                subject_id=subject_id,
                bucket=stored.bucket,
                object_key=stored.key,
                sha256=digest,
                created_by=get_user_by_email(session, actor).id,
            )
            reference_id = reference.id
        out.print(
            f"reference photo {reference_id} added to subject {subject}, stored as "
            f"s3://{stored.bucket}/{stored.key}"
        )
