"""Run heartbeats: how a job's holder is told apart from a run whose host is gone.

A flow run whose process (or whole machine) dies without a word stays RUNNING in Prefect; the job it
claimed would stay `rendering`/`publishing` until `LIKENESS_RECLAIM_AFTER_MINUTES` passed. So every
`render-job` and `publish-job` run beats: a background thread writes the time to the run's
`likeness.heartbeat` label every `LIKENESS_RUN_HEARTBEAT_SECONDS`. Whether the holder of a job lives
(`holder_alive`) then follows the run's state *and* its heartbeat: a RUNNING run silent for longer than
`LIKENESS_RUN_HEARTBEAT_TIMEOUT_SECONDS` is marked CRASHED in Prefect (with the reason) and counts as
dead, so the next run — the nightly schedule, a re-run, or the `dead-run-sweep` deployment
(`flows/recovery/`, every 2 min: it releases the job, audited `job.released`, and queues its next run) —
takes the job over at once (audited `job.reclaimed`). A RUNNING run that never beat (one started by older code)
is still trusted until the long clock runs out.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

logger = logging.getLogger(__name__)

LABEL = "likeness.heartbeat"


def _now() -> datetime:
    return datetime.now(UTC)


def beat(run_id: str) -> None:
    """Record one heartbeat on the run (a label: one small write, no event pipeline in between)."""
    with get_client(sync_client=True) as client:
        client.update_flow_run_labels(UUID(run_id), {LABEL: _now().isoformat()})


@contextlib.contextmanager
def beating(run_id: str | None, *, every: float) -> Iterator[None]:
    """Beat for the run while the block runs; a failed beat is logged and tried again next time."""
    if run_id is None:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                beat(run_id)
            except Exception as exc:  # noqa: BLE001 - an API hiccup must not fail the render; the next beat retries
                # One line, no traceback: an operator's log gets a warning per missed beat, not 60 lines.
                logger.warning(
                    "heartbeat of flow run %s not recorded: %s: %s", run_id, type(exc).__name__, exc
                )
            if stop.wait(every):
                return

    thread = threading.Thread(target=loop, name=f"heartbeat-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def current_run_id() -> str | None:
    """The flow run this code runs in, if any."""
    from prefect.runtime import flow_run

    return str(flow_run.id) if flow_run.id else None


def holder_alive(run_id: str, *, timeout_seconds: float) -> bool:
    """Whether the flow run holding a job still lives: PAUSED, or RUNNING with a recent heartbeat.

    A RUNNING run whose heartbeat is older than `timeout_seconds` is marked CRASHED (forced: its
    process is gone and cannot object) and counts as dead. A run unknown to this API counts as dead.
    """
    try:
        run_uuid = UUID(run_id)
    except ValueError:
        return False
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(run_uuid)
        except ObjectNotFound:
            return False
        state = run.state
        if state is None or not (state.is_running() or state.is_paused()):
            return False
        if state.is_paused():
            return True
        last = (run.labels or {}).get(LABEL)
        if last is None:
            return True  # never beat: trusted until the long reclaim clock runs out
        silent = (_now() - datetime.fromisoformat(str(last))).total_seconds()
        if silent <= timeout_seconds:
            return True
        from prefect.states import Crashed

        message = f"no heartbeat for {silent:.0f} s (limit {timeout_seconds:.0f} s): its host is gone"
        client.set_flow_run_state(run_uuid, Crashed(message=message), force=True)
        logger.warning("flow run %s marked crashed: %s", run_id, message)
        return False
