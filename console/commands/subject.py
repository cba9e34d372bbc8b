"""`likeness subject`: the people whose likeness may be used (compliance records them)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from console.context import ActorOption, acting_user, governance_command, out, show_time
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
    with governance_command() as ctx, unit_of_work(ctx.session_factory) as session:
        subject = subjects.add_subject(
            session, reference=reference, display_name=name, created_by=get_user_by_email(session, actor).id
        )
        out.print(f"subject {subject.reference} added (id {subject.id})")


@app.command("list")
def list_subjects(actor: ActorOption) -> None:
    """List subjects."""
    with governance_command() as ctx:
        acting_user(ctx, actor, READERS, "subject.list")
        with ctx.session_factory() as session:
            rows = subjects.list_subjects(session)
        table = Table("reference", "name", "created", "id")
        for subject in rows:
            table.add_row(subject.reference, subject.display_name, show_time(subject.created_at), subject.id)
        out.print(table)
