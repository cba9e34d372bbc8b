"""One way to make a Rich console, so every command's tables fit where its output goes."""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console

PIPED_WIDTH = 200


def output_width() -> int | None:
    """The terminal's width in a terminal; when piped, at least a width that keeps ids and keys whole.

    Rich falls back to 80 columns when stdout is not a terminal (and tools such as pytest-xdist export
    COLUMNS=80), which folds job ids, object keys and hashes across many lines in logs and CI output.
    A larger `COLUMNS` widens piped output further; a smaller one is ignored.
    """
    if sys.stdout.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return max(int(columns), PIPED_WIDTH) if columns.isdigit() else PIPED_WIDTH


def make_console(**options: Any) -> Console:
    """A console sized at call time (so a test or a wrapper may set `COLUMNS` first)."""
    options.setdefault("width", output_width())
    return Console(**options)
