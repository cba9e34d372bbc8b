"""Canonical JSON: one exact text per value, so hashes over it are reproducible anywhere.

Sorted keys, no whitespace, UTF-8 (not \\u-escaped), and no NaN/Infinity (not JSON). The engine
stores every JSON column in this form too, which lets the audit verifier hash stored text directly.
"""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> str:
    """The canonical JSON text of `value`; raises ValueError/TypeError for what JSON cannot hold."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
