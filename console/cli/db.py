"""`likeness db`: bring the database to the newest schema (Alembic is the only way the schema changes)."""

from __future__ import annotations

from typing import Annotated

import typer

from console.cli.context import governance_command, out
from governance.migrate import current_revision, head_revision, record_upgrade, upgrade
from governance.uow import unit_of_work

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Run the migrations up to REVISION (the newest by default) on LIKENESS_DATABASE_URL."""
    with governance_command(require_migrated=False) as ctx:
        url = ctx.settings.database_url
        before = current_revision(url)
        upgrade(url, revision)
        after = current_revision(url)
        if before != after:
            with unit_of_work(ctx.sessions) as session:
                record_upgrade(session, before=before, after=after, actor="system:cli")
        out.print(
            f"database at revision {after} (head {head_revision()})"
            + ("" if before != after else ", unchanged")
        )


@app.command("current")
def current_command() -> None:
    """Print the schema revision of the database and the newest one the code knows."""
    with governance_command(require_migrated=False) as ctx:
        out.print(
            f"database at revision {current_revision(ctx.settings.database_url) or 'none'} (head {head_revision()})"
        )
