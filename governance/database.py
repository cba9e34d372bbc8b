"""Engines and session factories: the one place that turns a database URL into SQLAlchemy objects."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from governance.canonical import canonical_json

DEFAULT_DATABASE_URL = "sqlite:///var/likeness.db"


def is_sqlite(url: str) -> bool:
    """True for SQLite URLs (any driver)."""
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine; for SQLite, make the folder, turn on foreign keys and WAL, begin IMMEDIATE.

    SQLite does not enforce foreign keys unless asked per connection, and WAL lets readers
    (the console, `audit verify`) run while a batch writes. Every SQLite transaction starts with
    `BEGIN IMMEDIATE`: it takes the write lock up front (waiting up to the busy timeout), so two
    writers serialise instead of one failing with SQLITE_BUSY when it upgrades a read to a write.
    That is what keeps concurrent audit appends from forking the chain on SQLite.

    JSON columns are written as canonical JSON (governance.canonical), on every backend.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30}, json_serializer=canonical_json)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection) -> None:  # type: ignore[no-untyped-def]
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, json_serializer=canonical_json)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that do not expire on commit, so plain data read inside a unit of work stays usable."""
    return sessionmaker(bind=engine, expire_on_commit=False)
