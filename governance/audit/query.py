"""Reading the audit log: the chain head, filtered queries, and JSONL/CSV exports ending with the head."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, TextIO

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from governance.audit.chain import EXPORT_FIELDS, event_fields, format_time
from governance.canonical import canonical_json
from governance.errors import ValidationFailed
from governance.schema import AuditEvent
from governance.types import utcnow


def chain_head(session: Session) -> tuple[int, str] | None:
    """The last event's (seq, hash), or None for an empty log."""
    row = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return (int(row[0]), str(row[1])) if row else None


@dataclass(frozen=True)
class AuditFilter:
    """Filters for `query` and `export`; `action` ending in `.*` matches a prefix (`consent.*`)."""

    subject_id: str | None = None
    job_id: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, statement: Select[Any]) -> Select[Any]:
        """Add the WHERE clauses for the filters that are set."""
        if self.subject_id:
            statement = statement.where(AuditEvent.subject_id == self.subject_id)
        if self.job_id:
            statement = statement.where(AuditEvent.job_id == self.job_id)
        if self.actor:
            statement = statement.where(AuditEvent.actor == self.actor)
        if self.action:
            if self.action.endswith(".*"):
                prefix = self.action[:-1]
                statement = statement.where(AuditEvent.action.startswith(prefix, autoescape=True))
            else:
                statement = statement.where(AuditEvent.action == self.action)
        if self.since:
            statement = statement.where(AuditEvent.occurred_at >= self.since)
        if self.until:
            statement = statement.where(AuditEvent.occurred_at < self.until)
        return statement


def query(
    session: Session,
    *,
    subject_id: str | None = None,
    job_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = 1000,
) -> list[AuditEvent]:
    """Events matching every given filter, oldest first (`until` is exclusive)."""
    if since and until and until <= since:
        raise ValidationFailed(
            f"audit query: until ({format_time(until)}) is not after since ({format_time(since)})"
        )
    flt = AuditFilter(subject_id, job_id, actor, action, since, until)
    statement = flt.apply(select(AuditEvent)).order_by(AuditEvent.seq)
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement))


def iter_events(
    session: Session, flt: AuditFilter, *, max_seq: int | None = None, batch_size: int = 2000
) -> Iterator[dict[str, Any]]:
    """Stream matching events as plain dicts, oldest first, without loading the log into memory."""
    statement = flt.apply(select(AuditEvent))
    if max_seq is not None:
        statement = statement.where(AuditEvent.seq <= max_seq)
    statement = statement.order_by(AuditEvent.seq).execution_options(yield_per=batch_size)
    for event in session.scalars(statement):
        yield event_fields(event)


@dataclass(frozen=True)
class ExportSummary:
    """How many events went out and the chain head at export time (an anchor for later `verify`)."""

    count: int
    head_seq: int | None
    head_hash: str | None


def export(
    session: Session,
    out: TextIO,
    *,
    fmt: Literal["jsonl", "csv"],
    flt: AuditFilter | None = None,
) -> ExportSummary:
    """Write matching events as JSONL or CSV, then one `chain_head` record naming the log's head.

    Every record carries `record` = `event` or `chain_head`, so both formats read the same way.
    """
    if fmt not in ("jsonl", "csv"):
        raise ValidationFailed(f"unknown export format {fmt!r}: use jsonl or csv")
    head = chain_head(session)
    head_seq, head_hash = head if head else (None, None)
    applied = flt or AuditFilter()
    filters = {
        name: (format_time(value) if isinstance(value, datetime) else value)
        for name, value in asdict(applied).items()
        if value is not None
    }
    trailer = {
        "record": "chain_head",
        "seq": head_seq,
        "hash": head_hash,
        "exported_at": format_time(utcnow()),
        "filter": filters,
    }
    count = 0
    if fmt == "jsonl":
        for fields in iter_events(session, applied, max_seq=head_seq or 0):
            out.write(canonical_json({"record": "event", **fields}) + "\n")
            count += 1
        out.write(canonical_json({**trailer, "count": count}) + "\n")
    else:
        writer = csv.DictWriter(out, fieldnames=["record", *EXPORT_FIELDS, "exported_at", "count", "filter"])
        writer.writeheader()
        for fields in iter_events(session, applied, max_seq=head_seq or 0):
            writer.writerow({"record": "event", **fields, "details": canonical_json(fields["details"])})
            count += 1
        writer.writerow({**trailer, "count": count, "filter": canonical_json(filters)})
    return ExportSummary(count, head_seq, head_hash)
