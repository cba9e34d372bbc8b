"""Signed audit checkpoints, composed: the tree head from the database, signed, stored in the audit bucket.

`write_checkpoint` signs the current tree head (governance.audit.ledger, governance.audit.note) and
stores it outside the database (pipeline.storage.audit_store). `checkpoint_after(...)` is what the flows call at
the end of a batch, a publication or a takedown, and the CLI and console after a consent change: it
retries a failing store a few times and then gives up with a warning, never raising, because the
governance action it follows has already committed and must not be undone or held up by the
checkpoint (the next checkpoint, at the latest the scheduled `audit-checkpoint` flow, covers the
events). `likeness audit checkpoint` calls `write_checkpoint` directly and does report a failure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from flows.runtime.retry import is_transient
from flows.runtime.settings import Settings
from governance.audit.ledger import StoredNote, TreeHead, tree_head
from governance.audit.note import NoteSigner, NoteVerifier, ensure_dev_signer, load_signer, sign_checkpoint
from pipeline.storage.audit_store import CheckpointStore, checkpoint_key
from pipeline.storage.objects import BucketMissingError

logger = logging.getLogger(__name__)

AUDIT_KEY_DIR = "audit-signing"
HOOK_DELAYS: tuple[float, ...] = (
    0.5,
    2.0,
)  # checkpoint_after: three attempts, about 2.5 s of waiting at most


@dataclass(frozen=True)
class CheckpointWrite:
    """What a write did: the tree head signed, where it is stored, and whether a new object was written."""

    size: int
    root_b64: str
    key: str
    written: bool
    note: str


def audit_signer(settings: Settings) -> NoteSigner:
    """The configured signing key, or the development key under `var_dir` (made on first use)."""
    if settings.audit_signing_key_path is not None:
        return load_signer(settings.audit_signing_key_path, settings.audit_origin)
    return ensure_dev_signer(settings.var_dir / AUDIT_KEY_DIR, settings.audit_origin)


def audit_verifier(settings: Settings) -> NoteVerifier:
    """The key checkpoints are verified with: the configured verifier key, else the signing key's own."""
    if settings.audit_verifier_key:
        return NoteVerifier.parse(settings.audit_verifier_key)
    return audit_signer(settings).verifier


def checkpoint_store(settings: Settings, *, fail_fast: bool = False) -> CheckpointStore:
    """The audit bucket on the configured endpoint (`fail_fast`: one short try per request, for hooks)."""
    timing: dict[str, Any] = {"connect_timeout": 1.0, "read_timeout": 10.0, "retries": 0} if fail_fast else {}
    return CheckpointStore(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=settings.s3_secure,
        bucket_prefix=settings.s3_bucket_prefix,
        **timing,
    )


# The last tree head this process computed, per database: the next checkpoint reads only newer events
# (tree_head checks that the head's last event is unchanged, else it reads the whole log again).
_last_heads: dict[str, TreeHead] = {}
_last_heads_lock = threading.Lock()


def signed_head(sessions: sessionmaker[Session], signer: NoteSigner) -> tuple[TreeHead, str]:
    """The current tree head (over a linked chain only) and its signed checkpoint note."""
    key = str(sessions.kw.get("bind").url) if sessions.kw.get("bind") is not None else ""  # type: ignore[union-attr]
    with _last_heads_lock:
        since = _last_heads.get(key)
    with sessions() as session, session.begin():
        head = tree_head(session, since=since)
    with _last_heads_lock:
        if key not in _last_heads or _last_heads[key].size <= head.size:
            _last_heads[key] = head
    return head, sign_checkpoint(signer, head.size, head.root)


def write_checkpoint(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    store: CheckpointStore | None = None,
    signer: NoteSigner | None = None,
) -> CheckpointWrite:
    """Sign the current tree head and store it in the audit bucket (once per tree size).

    Raises:
        AuditLogBroken: the chain does not link (nothing is signed over a broken log).
        StorageUnavailable / StoragePermissionError: the audit bucket cannot be written.
    """
    head, note = signed_head(sessions, signer or audit_signer(settings))
    store = store or checkpoint_store(settings)
    stored = store.put_checkpoint(head.size, note, retain_days=settings.audit_retention_days)
    return CheckpointWrite(head.size, head.root_b64, checkpoint_key(head.size), stored is not None, note)


def checkpoint_after(
    settings: Settings,
    sessions: sessionmaker[Session],
    reason: str,
    *,
    store: CheckpointStore | None = None,
    delays: Sequence[float] = HOOK_DELAYS,
) -> CheckpointWrite | None:
    """Write a checkpoint after `reason` (a governance action that has committed); never raises.

    Transient failures (storage down) are retried after each of `delays`; then, or at once for any other
    failure, a warning is logged and None returned.
    """
    attempts = len(delays) + 1
    for attempt in range(1, attempts + 1):
        try:
            return write_checkpoint(
                settings, sessions, store=store or checkpoint_store(settings, fail_fast=True)
            )
        except Exception as exc:  # noqa: BLE001 - the action this follows must never fail because of it
            if is_transient(exc) and attempt < attempts:
                logger.info(
                    "audit checkpoint after %s: attempt %d failed (%s); retrying", reason, attempt, exc
                )
                time.sleep(delays[attempt - 1])
                continue
            level = logging.WARNING if is_transient(exc) else logging.ERROR
            logger.log(
                level,
                "audit checkpoint after %s not written (%d attempt(s)): %s; the next checkpoint "
                "covers these events",
                reason,
                attempt,
                exc,
            )
            return None
    return None  # pragma: no cover - the loop always returns


def stored_notes(settings: Settings, *, store: CheckpointStore | None = None) -> list[StoredNote]:
    """Every stored checkpoint version (none if the audit bucket was never made)."""
    store = store or checkpoint_store(settings)
    try:
        return [StoredNote(obj.label, obj.text) for obj in store.checkpoints()]
    except BucketMissingError:
        return []
