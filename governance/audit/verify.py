"""Walking the audit chain: in the database (`verify_chain`) and in an exported file (`verify_export`).

The walk stops at the first event that breaks the chain and names it: a gap in `seq` (deleted rows),
a `prev_hash` that is not the previous event's hash, or contents that no longer match the stored hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, cast, func, select, type_coerce
from sqlalchemy.orm import Session

from governance.audit.chain import GENESIS_HASH, HASHED_FIELDS, compute_hash, format_time, stored_hash_input
from governance.canonical import canonical_json
from governance.schema import AuditEvent
from governance.types import UTCDateTime


@dataclass(frozen=True)
class ChainReport:
    """What walking the chain found. `broken_seq`/`broken_id` name the first event that breaks it."""

    ok: bool
    checked: int
    head_seq: int | None
    head_hash: str | None
    broken_seq: int | None = None
    broken_id: str | None = None
    problem: str | None = None

    @property
    def message(self) -> str:
        """One line for people."""
        if self.ok:
            return f"audit chain intact: {self.checked} events, head #{self.head_seq} {self.head_hash}"
        return f"audit chain broken at event #{self.broken_seq} ({self.broken_id}): {self.problem}"


def _sqlite_time(raw: str) -> str:
    """SQLite keeps `YYYY-MM-DD HH:MM:SS.ffffff` (UTC, see governance.types); hash form adds T and Z."""
    if len(raw) == 26 and raw[10] == " ":
        return raw[:10] + "T" + raw[11:] + "Z"
    try:
        return format_time(UTCDateTime().process_result_value(datetime.fromisoformat(raw), None))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(raw)  # not a time at all: it will not match the stored hash, and is reported as altered


def _matches(row: tuple[Any, ...], occurred_at: str) -> bool:
    """Does the stored hash match the stored contents? (`checked_leaf_data`: fast path, then parsing.)"""
    return checked_leaf_data(row, occurred_at)[0]


def stored_rows(
    session: Session, *, max_seq: int | None = None, min_seq: int = 1, batch_size: int = 5000
) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every event as stored, in `seq` order, streamed: (row, occurred_at in the hashed form).

    `row` is (seq, id, occurred_at, actor, action, subject_id, job_id, resource_type, resource_id,
    details_text, prev_hash, hash), read as text where the server can format it (no ORM objects), which
    is what lets the walkers check 100,000s of events a second.
    """
    dialect = session.get_bind().dialect.name
    occurred: Any = AuditEvent.occurred_at
    if dialect == "sqlite":  # stored as text already
        occurred = type_coerce(AuditEvent.occurred_at, String)
    elif dialect == "postgresql":  # formatted by the server, in the hashed form (no datetime round trip)
        occurred = func.to_char(func.timezone("UTC", AuditEvent.occurred_at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    statement = select(
        AuditEvent.seq,
        AuditEvent.id,
        occurred.label("occurred_at"),
        AuditEvent.actor,
        AuditEvent.action,
        AuditEvent.subject_id,
        AuditEvent.job_id,
        AuditEvent.resource_type,
        AuditEvent.resource_id,
        cast(AuditEvent.details, Text).label("details_text"),
        AuditEvent.prev_hash,
        AuditEvent.hash,
    )
    if max_seq is not None:
        statement = statement.where(AuditEvent.seq <= max_seq)
    if min_seq > 1:
        statement = statement.where(AuditEvent.seq >= min_seq)
    statement = statement.order_by(AuditEvent.seq).execution_options(yield_per=batch_size)
    for row in session.connection().execute(statement).tuples():
        raw_time = row[2]
        if dialect == "sqlite":
            occurred_at = _sqlite_time(raw_time)
        elif isinstance(raw_time, str):
            occurred_at = raw_time
        else:
            occurred_at = format_time(raw_time)
        yield row, occurred_at


def link_problem(row: tuple[Any, ...], occurred_at: str, expected_seq: int, prev_hash: str) -> str | None:
    """Why this stored event does not continue the chain at `expected_seq` after `prev_hash`, or None."""
    seq = int(row[0])
    if seq != expected_seq:
        missing = f"#{expected_seq}" if seq == expected_seq + 1 else f"#{expected_seq}..#{seq - 1}"
        return f"expected event #{expected_seq} here: {missing} missing (deleted?)"
    if row[10] != prev_hash:
        return f"prev_hash does not match the hash of event #{seq - 1}"
    if not _matches(row, occurred_at):
        return "contents do not match the stored hash (altered?)"
    return None


def leaf_data(row: tuple[Any, ...], occurred_at: str) -> bytes:
    """The canonical event text (what its chain hash covers), as the Merkle tree's leaf data."""
    return checked_leaf_data(row, occurred_at)[1]


def checked_leaf_data(row: tuple[Any, ...], occurred_at: str) -> tuple[bool, bytes]:
    """(whether the stored hash matches, the canonical event text): one serialisation for chain and tree.

    The fast serialisation is used when it re-hashes to the stored hash (then it is the canonical
    text); otherwise the details are parsed and canonicalised by the definition.
    """
    fast = stored_hash_input(row, occurred_at).encode("utf-8")
    if hashlib.sha256(fast).hexdigest() == row[11]:
        return True, fast
    seq, id_, _, actor, action, subject_id, job_id, rtype, rid, details_text, prev_hash, _ = row
    try:
        details = json.loads(details_text)
    except ValueError:
        return False, fast
    fields = {
        "seq": int(seq),
        "id": id_,
        "occurred_at": occurred_at,
        "actor": actor,
        "action": action,
        "subject_id": subject_id,
        "job_id": job_id,
        "resource_type": rtype,
        "resource_id": rid,
        "details": details,
        "prev_hash": prev_hash,
    }
    canonical = canonical_json({name: fields[name] for name in HASHED_FIELDS}).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest() == row[11], canonical


def linked_leaf_data(
    row: tuple[Any, ...], occurred_at: str, expected_seq: int, prev_hash: str
) -> tuple[str | None, bytes]:
    """`link_problem` and `leaf_data` in one serialisation: (why the link breaks or None, leaf data)."""
    seq = int(row[0])
    if seq != expected_seq or row[10] != prev_hash:
        return link_problem(row, occurred_at, expected_seq, prev_hash), b""
    intact, data = checked_leaf_data(row, occurred_at)
    return (None if intact else "contents do not match the stored hash (altered?)"), data


def verify_chain(session: Session, *, anchor_hash: str | None = None, batch_size: int = 5000) -> ChainReport:
    """Walk every event in order; stop at the first gap, broken link or altered event.

    `anchor_hash` is a head recorded earlier (an export's chain head): it must still be in the chain,
    which also catches events removed from the end.
    """
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    last: tuple[int, str] | None = None
    anchor_seen = anchor_hash is None
    for row, occurred_at in stored_rows(session, batch_size=batch_size):
        seq, stored_hash = int(row[0]), row[11]
        problem = link_problem(row, occurred_at, expected_seq, prev_hash)
        if problem:
            head = last or (None, None)
            return ChainReport(False, checked, head[0], head[1], seq, row[1], problem)
        anchor_seen = anchor_seen or stored_hash == anchor_hash
        checked += 1
        expected_seq, prev_hash = seq + 1, stored_hash
        last = (seq, stored_hash)
    head_seq, head_hash = last or (None, None)
    if not anchor_seen:
        return ChainReport(
            False,
            checked,
            head_seq,
            head_hash,
            (head_seq or 0) + 1,
            None,
            f"anchor {anchor_hash} is not in the chain: events after #{head_seq} are missing",
        )
    return ChainReport(True, checked, head_seq, head_hash)


def verify_export(lines: Iterable[str]) -> ChainReport:
    """Re-check a JSONL export away from the database.

    Every event must re-hash to its `hash`. An unfiltered export (its `chain_head` names no filter)
    must also link without gaps from event #1 and end at the recorded head, so a removed or reordered
    line is caught. A filtered export can only show that each event it holds is intact.
    Compare the head's hash with a trusted copy (the database, or a later `audit.exported` event).
    """
    events: list[dict[str, Any]] = []
    head: dict[str, Any] | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            return ChainReport(False, len(events), None, None, problem=f"line {number} is not JSON")
        if not isinstance(item, dict):
            return ChainReport(False, len(events), None, None, problem=f"line {number} is not a record")
        if item.get("record") == "chain_head":
            head = item
            continue
        try:
            intact = compute_hash(item) == item["hash"]
        except (KeyError, TypeError, ValueError):
            return ChainReport(False, len(events), None, None, problem=f"line {number} is not an event")
        if not intact:
            return ChainReport(
                False,
                len(events),
                None,
                None,
                item.get("seq"),
                item.get("id"),
                "contents do not match the stored hash (altered?)",
            )
        events.append(item)
    if head is None:
        return ChainReport(
            False, len(events), None, None, problem="no chain_head record: the export is incomplete"
        )
    head_seq, head_hash = head.get("seq"), head.get("hash")
    if head.get("count") != len(events):
        return ChainReport(
            False,
            len(events),
            head_seq,
            head_hash,
            problem=f"chain_head says {head.get('count')} events, the file holds {len(events)}",
        )
    if not head.get("filter"):  # unfiltered: the whole chain must be here, linked, ending at the head
        expected_seq, prev_hash = 1, GENESIS_HASH
        for item in events:
            if item["seq"] != expected_seq or item["prev_hash"] != prev_hash:
                return ChainReport(
                    False,
                    expected_seq - 1,
                    head_seq,
                    head_hash,
                    item["seq"],
                    item.get("id"),
                    f"does not follow event #{expected_seq - 1} (missing or reordered lines?)",
                )
            expected_seq, prev_hash = item["seq"] + 1, item["hash"]
        if prev_hash != head_hash:
            return ChainReport(
                False, len(events), head_seq, head_hash, problem="the last event is not the chain head"
            )
        return ChainReport(True, len(events), head_seq, head_hash)
    return ChainReport(
        True,
        len(events),
        head_seq,
        head_hash,
        problem="filtered export: each event is intact; links are not checkable",
    )
