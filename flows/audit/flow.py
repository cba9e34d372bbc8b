"""The scheduled `audit-checkpoint` flow: sign and store the audit log's tree head every few minutes.

Kept apart from `flows.audit.checkpoints` so the governance commands that write a checkpoint after a
consent change never import Prefect (the CLI start-up rule, `tests/console/test_cli_startup.py`).
"""

from __future__ import annotations

import logging

from prefect import flow

from flows.audit.checkpoints import write_checkpoint
from flows.runtime.retry import RETRIES, RETRY_DELAYS
from flows.runtime.root import get_runtime

logger = logging.getLogger(__name__)


@flow(name="audit-checkpoint", retries=RETRIES, retry_delay_seconds=RETRY_DELAYS[0])
def audit_checkpoint() -> dict[str, object]:
    """Scheduled: sign and store the current tree head (a no-op object-wise when nothing was appended)."""
    rt = get_runtime()
    result = write_checkpoint(rt.settings, rt.sessions)
    logger.info(
        "audit checkpoint at size %d (%s)", result.size, "written" if result.written else "already stored"
    )
    return {"size": result.size, "root": result.root_b64, "key": result.key, "written": result.written}
