"""An audit bundle: the whole log, its signed checkpoints and the verifier key, checkable offline.

One JSONL file: a `verifier_key` record, one `checkpoint` record per stored checkpoint note (with where
it was found), every event (as `audit export` writes them), and the `chain_head`. `verify_bundle`
needs nothing but the file (no database, no network): it re-hashes and links every event, rebuilds
the Merkle tree, and checks each checkpoint's signature, its root at its size and its consistency with
the next (`governance.audit.ledger.check_links`). The key inside the bundle proves only that the
checkpoints agree with it; pass the key the organisation publishes as `trusted_key` to pin it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

from sqlalchemy.orm import Session

from governance.audit.chain import GENESIS_HASH, HASHED_FIELDS, compute_hash, format_time
from governance.audit.ledger import EventLink, LogReport, StoredNote, check_links
from governance.audit.note import NoteError, NoteVerifier
from governance.audit.query import AuditFilter, chain_head, iter_events
from governance.audit.tree import leaf_hash
from governance.canonical import canonical_json
from governance.types import utcnow


def write_bundle(
    session: Session, out: TextIO, *, notes: Sequence[StoredNote], verifier: NoteVerifier
) -> int:
    """Write the bundle (events up to the current head); returns the number of events written."""
    head = chain_head(session)
    head_seq, head_hash = head if head else (None, None)
    out.write(canonical_json({"record": "verifier_key", "key": verifier.key_string()}) + "\n")
    for note in notes:
        out.write(canonical_json({"record": "checkpoint", "label": note.label, "note": note.text}) + "\n")
    count = 0
    for fields in iter_events(session, AuditFilter(), max_seq=head_seq or 0):
        out.write(canonical_json({"record": "event", **fields}) + "\n")
        count += 1
    out.write(
        canonical_json(
            {
                "record": "chain_head",
                "seq": head_seq,
                "hash": head_hash,
                "count": count,
                "exported_at": format_time(utcnow()),
                "filter": {},
            }
        )
        + "\n"
    )
    return count


def is_bundle(first_line: str) -> bool:
    """Whether a JSONL export is a bundle (it starts with the verifier key)."""
    try:
        item = json.loads(first_line)
    except ValueError:
        return False
    return isinstance(item, dict) and item.get("record") == "verifier_key"


class _BundleError(ValueError):
    pass


def _event_links(events: Iterable[dict[str, Any]]) -> Iterator[EventLink]:
    expected, prev = 1, GENESIS_HASH
    for item in events:
        seq, event_id, stored = item.get("seq"), str(item.get("id")), str(item.get("hash"))
        problem = None
        try:
            intact = compute_hash(item) == stored
            data = canonical_json({name: item[name] for name in HASHED_FIELDS}).encode("utf-8")
        except (KeyError, TypeError, ValueError):
            intact, data = False, b""
        if not isinstance(seq, int) or seq != expected:
            problem = f"expected event #{expected} here: the bundle has #{seq} (missing or reordered lines?)"
        elif item.get("prev_hash") != prev:
            problem = f"prev_hash does not match the hash of event #{seq - 1}"
        elif not intact:
            problem = "contents do not match the stored hash (altered?)"
        yield (
            (seq if isinstance(seq, int) else expected),
            event_id,
            stored,
            problem,
            None if problem else leaf_hash(data),
        )
        if problem:
            return
        expected, prev = expected + 1, stored


def _records(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind, record) of each non-blank line; `_BundleError` naming the first line that is not one."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise _BundleError(f"line {number} is not JSON") from None
        kind = item.get("record") if isinstance(item, dict) else None
        if kind not in ("verifier_key", "checkpoint", "event", "chain_head"):
            raise _BundleError(f"line {number} is not a bundle record")
        yield str(kind), item


def verify_bundle(
    lines: Iterable[str], *, trusted_key: str | None = None
) -> tuple[LogReport, NoteVerifier | None]:
    """Check a bundle offline, streaming its events; returns the report and the key it was checked with.

    The verifier key and the checkpoints come before the events (as `write_bundle` writes them), so
    the events are checked as they are read, in constant memory.
    """
    key_text: str | None = None
    notes: list[StoredNote] = []
    head: dict[str, Any] = {}
    records = _records(lines)
    first_event: dict[str, Any] | None = None
    try:
        for kind, item in records:
            if kind == "verifier_key":
                key_text = str(item.get("key"))
            elif kind == "checkpoint":
                notes.append(StoredNote(str(item.get("label")), str(item.get("note"))))
            elif kind == "chain_head":
                head = item
            else:
                first_event = item
                break
        if key_text is None:
            raise _BundleError("no verifier_key record before the events: not an audit bundle")
        try:
            verifier = NoteVerifier.parse(trusted_key or key_text)
            if trusted_key is not None and NoteVerifier.parse(key_text).key_string() != verifier.key_string():
                raise _BundleError(
                    f"the bundle's key {key_text} is not the trusted key {verifier.key_string()}"
                )
        except NoteError as exc:
            raise _BundleError(f"verifier key: {exc}") from None

        def events() -> Iterator[dict[str, Any]]:
            if first_event is not None:
                yield first_event
            for kind, item in records:
                if kind == "event":
                    if head:
                        raise _BundleError("an event after the chain_head record")
                    yield item
                elif kind == "chain_head":
                    head.update(item)
                else:
                    raise _BundleError(f"a {kind} record among the events")

        report = check_links(_event_links(events()), notes, verifier)
    except _BundleError as exc:
        return LogReport(False, 0, len(notes), None, None, problem=str(exc)), None
    if not report.ok:
        return report, verifier
    if not head:
        return LogReport(
            False,
            report.checked,
            len(notes),
            report.head_seq,
            report.head_hash,
            problem="no chain_head record: the bundle is incomplete",
        ), verifier
    if head.get("count") != report.checked or head.get("hash") != report.head_hash:
        return LogReport(
            False,
            report.checked,
            len(notes),
            report.head_seq,
            report.head_hash,
            problem=f"chain_head says {head.get('count')} events ending at {head.get('hash')}, "
            f"the bundle holds {report.checked} ending at {report.head_hash}",
        ), verifier
    return report, verifier
