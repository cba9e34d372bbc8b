"""The canonical form of an audit event and its hash: what `record` writes and every verifier recomputes.

`hash` = SHA-256 over the canonical JSON (governance.canonical) of the event's fields plus `prev_hash`;
`occurred_at` is written `YYYY-MM-DDTHH:MM:SS.ffffffZ`; the first event's `prev_hash` is 64 zeros.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from governance.canonical import canonical_json
from governance.schema import AuditEvent

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "seq",
    "id",
    "occurred_at",
    "actor",
    "action",
    "subject_id",
    "job_id",
    "resource_type",
    "resource_id",
    "details",
    "prev_hash",
)
EXPORT_FIELDS = (*HASHED_FIELDS, "hash")


def format_time(moment: datetime) -> str:
    """ISO-8601 UTC with microseconds and a `Z`: the form that is hashed and exported."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def compute_hash(fields: dict[str, Any]) -> str:
    """SHA-256 (hex) over the canonical JSON of an event's hashed fields (which include prev_hash)."""
    payload = {name: fields[name] for name in HASHED_FIELDS}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def event_fields(event: AuditEvent) -> dict[str, Any]:
    """An event as plain data, timestamps formatted as they are hashed."""
    return {
        "seq": event.seq,
        "id": event.id,
        "occurred_at": format_time(event.occurred_at),
        "actor": event.actor,
        "action": event.action,
        "subject_id": event.subject_id,
        "job_id": event.job_id,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "details": event.details,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


_encode = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses for str (C-accelerated)


def stored_hash_input(row: tuple[Any, ...], occurred_at: str) -> str:
    """The canonical JSON of an event built from stored text, without parsing its details.

    `row` is (seq, id, occurred_at, actor, action, subject_id, job_id, resource_type, resource_id,
    details_text, prev_hash, hash). Equal to `canonical_json` of the event's hashed fields whenever the
    stored details text is canonical (the engine writes it so); keys are in sorted order. This is the
    verifier's fast path.
    """
    seq, id_, _, actor, action, subject_id, job_id, rtype, rid, details_text, prev_hash, _ = row
    enc = _encode
    return (
        f'{{"action":{enc(action)},"actor":{enc(actor)},"details":{details_text},"id":{enc(id_)},'
        f'"job_id":{"null" if job_id is None else enc(job_id)},"occurred_at":{enc(occurred_at)},'
        f'"prev_hash":{enc(prev_hash)},"resource_id":{"null" if rid is None else enc(rid)},'
        f'"resource_type":{"null" if rtype is None else enc(rtype)},"seq":{int(seq)},'
        f'"subject_id":{"null" if subject_id is None else enc(subject_id)}}}'
    )
