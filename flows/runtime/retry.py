"""Which failures a task may retry: transient ones (storage or database unreachable), and nothing else.

A governance refusal (consent, likeness, review) or a bad input is a decision, not an accident;
retrying it would at best waste a GPU slot and at worst wear a refusal down. So every task that
retries passes `retry_condition_fn=only_transient`.

How long to wait between attempts is the operator's: `LIKENESS_RETRY_DELAYS`, seconds separated by
commas (default `2,10,30`: three retries, 42 s in all before a storage outage is reported). Prefect
takes a task's retry options when the task is defined, so the variable is read once, when the flows are
imported (a worker's or a CLI's environment), as Prefect reads its own `PREFECT_TASK_DEFAULT_*`.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from flows.runtime.settings import SettingsInvalid
from pipeline.errors import TransientError

logger = logging.getLogger(__name__)

TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientError,
    OperationalError,  # connection lost, database locked, server restarting
    DisconnectionError,
    PoolTimeout,
    ConnectionError,
    TimeoutError,
)

RETRY_DELAYS_VARIABLE = "LIKENESS_RETRY_DELAYS"
DEFAULT_RETRY_DELAYS = (2.0, 10.0, 30.0)
MAX_RETRIES = 10


def parse_retry_delays(value: str | None) -> list[float]:
    """The seconds to wait before each retry, from `LIKENESS_RETRY_DELAYS` (unset or blank: the default).

    Raises:
        SettingsInvalid: not a comma-separated list of 1 to 10 finite, non-negative numbers of seconds.
    """
    if value is None or not value.strip():
        return list(DEFAULT_RETRY_DELAYS)
    expected = f"{RETRY_DELAYS_VARIABLE}={value!r}: expected 1 to {MAX_RETRIES} seconds separated by commas, e.g. 2,10,30"
    try:
        delays = [float(part) for part in value.split(",")]
    except ValueError:
        raise SettingsInvalid(expected) from None
    if len(delays) > MAX_RETRIES or any(not math.isfinite(delay) or delay < 0 for delay in delays):
        raise SettingsInvalid(expected)
    return delays


# Shared task options: a few retries with back-off, for transient errors only (one per configured delay).
RETRY_DELAYS: list[float] = parse_retry_delays(os.environ.get(RETRY_DELAYS_VARIABLE))
RETRIES = len(RETRY_DELAYS)


def is_transient(exc: BaseException | None) -> bool:
    """True when `exc` (or the exception it was raised from) is worth another attempt."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, TRANSIENT_TYPES):
            return True
        seen.add(id(exc))
        exc = exc.__cause__
    return False


def only_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's `retry_condition_fn`: retry the run only when it failed for a transient reason."""
    exc = state.result(raise_on_failure=False)
    retry = isinstance(exc, BaseException) and is_transient(exc)
    if not retry:
        logger.info(
            "task %s failed terminally (%s): not retried", getattr(task, "name", task), type(exc).__name__
        )
    return retry
