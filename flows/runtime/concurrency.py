"""The `gpu` global concurrency limit: one slot per model forward pass stream an accelerator can take.

Every animation takes a slot (`gpu_slot()`), whichever worker, process or thread it runs in, so a
batch fanned out on a task runner or over workers never oversubscribes an accelerator.

**The limit belongs to the operator.** `ensure_gpu_limit` creates it with `LIKENESS_GPU_CONCURRENCY`
slots only when it does not exist; an existing limit is never resized by a run (set it with
`prefect gcl create gpu --limit N` / `prefect gcl update gpu --limit N`, see docs/flows.md).

**A slot is a lease.** The block releases its slot on every way out of it (return, exception, a
`KeyboardInterrupt` or `SystemExit` as well). A process killed outright cannot release anything, so the
slot is taken as a lease of `LIKENESS_GPU_LEASE_SECONDS` (60 s at least, Prefect's minimum) that
Prefect renews in the background while the run lives; when the process is gone the renewals stop and
the server's repossessor service frees the slot once the lease has run out. The project's local server
keeps leases on disk, so this holds across a restart of the server too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

logger = logging.getLogger(__name__)

GPU_LIMIT = "gpu"
MIN_LEASE_SECONDS = 60.0  # the Prefect server refuses shorter leases


def ensure_gpu_limit(size: int, *, name: str = GPU_LIMIT) -> int:
    """Create the limit with `size` slots if it is missing, so that `gpu_slot()` never runs unlimited.

    An existing limit is left exactly as the operator set it. Returns the limit's size in force.
    """
    if size < 1:
        raise ValueError(f"`size` of concurrency limit {name} must be at least 1, got {size}")
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=size))
            except ObjectAlreadyExists:  # another run created it a moment ago: theirs stands
                existing = client.read_global_concurrency_limit_by_name(name)
            else:
                logger.info("global concurrency limit %s created with %d slot(s)", name, size)
                return size
    if existing.limit != size:
        logger.info(
            "global concurrency limit %s has %d slot(s) (set by the operator; "
            "LIKENESS_GPU_CONCURRENCY=%d is only used to create it)",
            name,
            existing.limit,
            size,
        )
    return int(existing.limit)


@contextlib.contextmanager
def gpu_slot(
    *, name: str = GPU_LIMIT, timeout_seconds: float | None = None, lease_seconds: float | None = None
) -> Iterator[None]:
    """Hold one slot of the accelerator for the block; strict, so a missing limit fails loudly.

    `lease_seconds` (default: the runtime's `gpu_lease_seconds`) bounds how long a killed run can keep
    the slot; the lease is renewed while this process lives.
    """
    if lease_seconds is None:
        from flows.runtime.root import get_runtime

        lease_seconds = get_runtime().settings.gpu_lease_seconds
    lease = max(MIN_LEASE_SECONDS, float(lease_seconds))
    with concurrency(name, occupy=1, timeout_seconds=timeout_seconds, strict=True, lease_duration=lease):
        yield
