"""The composition root: the only package that imports Prefect and wires stages to governance."""

from __future__ import annotations

import os


def keep_prefect_offline() -> None:
    """Turn off Prefect's telemetry and its temporary servers unless the operator set otherwise.

    This product runs without internet, and talks to one Prefect API (`PREFECT_API_URL`, or the project's
    own local server: `flows.runtime.orchestrator`). Prefect would otherwise start a temporary ("ephemeral")
    server inside every process that runs a flow without an API: one per command, racing the others for
    its SQLite file, timing out under load and forgetting the `gpu` leases of the runs it served. With
    ephemeral mode off, a missing API is an error (`flows.runtime.orchestrator.require_api` words it). It has to
    be set before Prefect reads its settings, which is why it runs when this package is imported: every
    module that imports Prefect lives below here.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if "PREFECT_SERVER_EPHEMERAL_ENABLED" not in os.environ:
        os.environ.setdefault("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "false")


keep_prefect_offline()
