"""Stored objects for the browser: fetched through the flows' store into a short-lived cache named by
their SHA-256 (so the bytes served are the bytes recorded), then served with range support for seeking.

The object must still exist in storage on every request: a render deleted by the retention sweep, or an
input removed, is not served from a stale local copy. Copies older than `CACHE_SECONDS` are deleted.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import time
from pathlib import Path

from console.web.errors import PageNotFound
from console.web.state import ConsoleState
from flows.jobs.data import StoredRef, fetch

CACHE_SECONDS = 3600


def _prune(folder: Path, now: float) -> None:
    for entry in folder.iterdir():
        with contextlib.suppress(OSError):
            if entry.is_file() and now - entry.stat().st_mtime > CACHE_SECONDS:
                entry.unlink()


def cached_copy(state: ConsoleState, ref: StoredRef) -> tuple[Path, str]:
    """A local, hash-checked copy of `ref` and its media type; PageNotFound when storage no longer has it."""
    suffix = Path(ref.key).suffix.lower() or ".bin"
    if not ref.sha256.isalnum() or len(ref.sha256) != 64:
        raise PageNotFound(f"object {ref.bucket}/{ref.key} has no usable sha256 on record")
    if not state.runtime.store.exists(ref.bucket, ref.key):
        raise PageNotFound(f"object {ref.bucket}/{ref.key} is no longer in storage")
    now = time.time()
    _prune(state.media_cache, now)
    dest = state.media_cache / f"{ref.sha256}{suffix}"
    fetch(state.runtime.store, ref, dest)
    os.utime(dest, (now, now))
    media_type = (
        "video/quicktime"
        if suffix == ".mov"
        else mimetypes.guess_type(dest.name)[0] or "application/octet-stream"
    )
    return dest, media_type
