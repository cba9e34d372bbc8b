"""Parsing of form and query values the console accepts: dates, term lists. Bad values refuse with one line."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from console.web.errors import BadInput

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def parse_moment(value: str | None, field: str) -> datetime | None:
    """`YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS]` (a browser's datetime-local), read as UTC; empty is None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{field} {text!r} is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    try:  # 9999-12-31T23:00-05:00 lies in the year 10000 in UTC, which no datetime can hold
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise BadInput(f"{field} {text!r} is out of range: in UTC it falls after the year 9999") from None


def parse_terms(value: str, field: str) -> list[str]:
    """A comma- or space-separated list of words (purposes, channels, territories)."""
    terms = [term for term in re.split(r"[\s,]+", value.strip()) if term]
    if not terms:
        raise BadInput(f"{field} is empty: give at least one")
    return terms


def optional_id(value: str | None, field: str) -> str | None:
    """An id filter: empty is None; anything else must look like a UUID (so typos fail loudly)."""
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if not UUID.match(text):
        raise BadInput(f"{field} {value.strip()!r} is not an id (a UUID)")
    return text


def required_text(value: str, field: str, *, max_length: int = 2000) -> str:
    """A non-blank text field, trimmed."""
    text = value.strip()
    if not text:
        raise BadInput(f"{field} is required")
    if len(text) > max_length:
        raise BadInput(f"{field} is longer than {max_length} characters")
    return text
