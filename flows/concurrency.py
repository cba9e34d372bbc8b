"""The `gpu` global concurrency limit: one slot per model forward pass stream an accelerator can take.

Every animation takes a slot (`gpu_slot()`), whichever worker, process or thread it runs in, so a
batch fanned out on a task runner never oversubscribes an accelerator. The limit's size comes from
`LIKENESS_GPU_CONCURRENCY`; the batch flow sets it before fanning out (`ensure_gpu_limit`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency

logger = logging.getLogger(__name__)

GPU_LIMIT = "gpu"


def ensure_gpu_limit(size: int, *, name: str = GPU_LIMIT) -> None:
    """Create the global concurrency limit, or set its size, so that `gpu_slot()` never runs unlimited."""
    if size < 1:
        raise ValueError(f"`size` of concurrency limit {name} must be at least 1, got {size}")
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, size)
    logger.info("global concurrency limit %s set to %d", name, size)


@contextlib.contextmanager
def gpu_slot(*, name: str = GPU_LIMIT, timeout_seconds: float | None = None) -> Iterator[None]:
    """Hold one slot of the accelerator for the block; strict, so a missing limit fails loudly."""
    with concurrency(name, occupy=1, timeout_seconds=timeout_seconds, strict=True):
        yield
