"""The SHA-256 of a file: how checkpoints, clips, inputs and stored objects are named and checked.

The one helper for every layer that may import `models` (`models`, `pipeline`, `flows`); standard
library only, so hashing a file never imports torch. `governance` keeps its own copy
(`governance.consent.sha256_file`): its import rules forbid `models` and `pipeline`.
"""

from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the file's bytes, read in chunks (a multi-gigabyte checkpoint is never in memory)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
