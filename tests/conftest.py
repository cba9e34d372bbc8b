"""Registers the shared fixture modules; each owns one real part of the system."""

import os

# Nothing in the tests may reach the network or pick up a developer's Prefect profile.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.storage",
    "tests.fixtures.media",
    "tests.fixtures.prefect",
    "tests.fixtures.model",
]
