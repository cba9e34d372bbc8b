"""Which failures a task may retry: transient ones (storage or database unreachable), and nothing else.

A governance refusal (consent, likeness, review) or a bad input is a decision, not an accident;
retrying it would at best waste a GPU slot and at worst wear a refusal down. So every task that
retries passes `retry_condition_fn=only_transient`.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

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

# Shared task options: a few quick retries with back-off, for transient errors only.
RETRIES = 3
RETRY_DELAYS: list[float] = [2.0, 10.0, 30.0]


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
