"""Prefect's console logs, kept out of a CLI command's output unless asked for.

A command that runs a flow in its own process (a batch, an approval that publishes locally) prints its
own result as one line or a table; Prefect's console handler would otherwise add its run and task lines
around it, and whether it did depended on which command first configured Prefect's logging in the
process. Prefect's API log handler still records every line for the run's page in the UI.
"""

from __future__ import annotations

import logging


def _drop(record: logging.LogRecord) -> bool:
    """A log filter that lets nothing through."""
    return False


def quiet_prefect_console() -> None:
    """Silence Prefect's console log handlers for the rest of this process.

    The local Prefect server logs its own shutdown at exit, so restoring the handlers after the run
    would still print a line beside the result: they stay silent until the process ends.
    """
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()  # Prefect configures its logging on first use: make that happen now
    loggers = [
        logging.getLogger(),
        *(item for item in logging.root.manager.loggerDict.values() if isinstance(item, logging.Logger)),
    ]
    for item in loggers:
        for handler in item.handlers:
            if isinstance(handler, PrefectConsoleHandler) and _drop not in handler.filters:
                handler.addFilter(_drop)  # a filter, not a level: a later incremental setup resets levels
