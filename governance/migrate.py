"""Bring a database to the newest schema with Alembic, from code (the CLI, the tests, the flows' runtime)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.orm import Session

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic Config pointing at our migrations, independent of the working directory.

    The URL travels as a Config attribute (never through the environment), so two databases can be
    migrated from one process.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["configure_logging"] = False
    if url is not None:
        config.attributes["database_url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Run every migration up to `revision` (head by default) on the database at `url`."""
    command.upgrade(alembic_config(url), revision)


def record_upgrade(session: Session, *, before: str | None, after: str | None, actor: str) -> None:
    """Audit a schema change (`db.upgraded`, from which revision to which), once the upgrade has run."""
    from governance.audit import record as audit
    from governance.audit.actions import AuditAction

    audit.record(session, action=AuditAction.DB_UPGRADED, actor=actor, details={"from": before, "to": after})


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None for an empty or absent database).

    An SQLite file that does not exist is reported as None without connecting: connecting would create
    an empty file, and a read command must not leave a database behind that was never migrated.
    """
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.engine import make_url

    from governance.database import make_engine

    parsed = make_url(url)
    if (
        parsed.get_backend_name() == "sqlite"
        and parsed.database
        and parsed.database != ":memory:"
        and not parsed.database.startswith("file:")
        and not Path(parsed.database).exists()
    ):
        return None
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision in `migrations/versions`."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found under {MIGRATIONS_DIR}")
    return head
