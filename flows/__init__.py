"""The composition root: the only package that imports Prefect and wires stages to governance."""

from __future__ import annotations

import os


def keep_prefect_offline() -> None:
    """Turn off Prefect's telemetry unless the operator set it: this product runs without internet.

    Prefect's temporary local server (started by every flow run without a server) sends telemetry by
    default; the attempt fails offline and, under load, races our runs for its SQLite database. It has
    to be set before Prefect reads its settings, which is why it runs when this package is imported:
    every module that imports Prefect lives below here.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


keep_prefect_offline()
