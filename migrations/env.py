"""Alembic environment: which database, which metadata, how to run.

The URL comes from, in order: a connection handed over in `config.attributes["connection"]` (tests,
`governance.migrate`), the Config attribute `database_url`, `LIKENESS_DATABASE_URL`, and finally
`governance.database.DEFAULT_DATABASE_URL`.
"""

from __future__ import annotations

import logging.config
import os

from alembic import context
from sqlalchemy import Connection

from governance.database import DEFAULT_DATABASE_URL, make_engine
from governance.schema import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    """The URL to migrate: Config attribute, then environment, then the default SQLite file."""
    url = config.attributes.get("database_url") or os.environ.get("LIKENESS_DATABASE_URL")
    return str(url or DEFAULT_DATABASE_URL)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_offline() -> None:
    """Emit SQL without a database (`alembic upgrade head --sql`)."""
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run against a live database, in one transaction."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(database_url())
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
