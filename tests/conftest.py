"""Registers the shared fixture modules; each owns one real part of the system."""

import os

# Nothing in the tests may reach the network or pick up a developer's Prefect profile.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Short back-off for transient failures (the product's default is 2, 10, 30 s): a test that takes storage
# away waits out every retry before the failure it asserts. Set before the flows are imported (they read
# it at import time), and inherited by every CLI and worker the tests start.
os.environ.setdefault("LIKENESS_RETRY_DELAYS", "0.2,0.5,1")

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.storage",
    "tests.fixtures.media",
    "tests.fixtures.prefect",
    "tests.fixtures.model",
]
