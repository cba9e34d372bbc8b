"""Column types shared by the schema: timezone-aware UTC timestamps on every backend, UUID-string ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect
from sqlalchemy.types import TypeDecorator


def new_id() -> str:
    """A fresh id: a UUID4 as its 36-character string."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """Now, aware, in UTC, at microsecond precision (what both databases keep)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC; always hand back aware UTC datetimes.

    SQLite drops the zone on the way in and out; without this, comparisons between values read back
    and `utcnow()` would raise (naive vs aware) or, worse, silently compare local times.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: pass an aware datetime (UTC)")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
