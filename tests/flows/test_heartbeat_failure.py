"""A beat the API does not take is one warning line and the next beat is tried; the block goes on."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from flows.runtime import heartbeat

RUN = "5b0e1c7a-0000-4000-8000-00000000beef"


def test_a_failed_beat_is_one_line_without_a_traceback_and_is_retried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[str] = []

    def refused(run_id: str) -> None:
        attempts.append(run_id)
        raise httpx.ConnectError("[Errno 111] Connection refused")

    monkeypatch.setattr(heartbeat, "beat", refused)
    with caplog.at_level(logging.WARNING, logger=heartbeat.__name__), heartbeat.beating(RUN, every=0.05):
        deadline = time.monotonic() + 10
        while len(attempts) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(attempts) >= 3 and set(attempts) == {RUN}  # tried again after each failure
    warnings = [record for record in caplog.records if record.name == heartbeat.__name__]
    assert warnings and all(record.exc_info is None for record in warnings)
    assert warnings[0].getMessage() == (
        f"heartbeat of flow run {RUN} not recorded: ConnectError: [Errno 111] Connection refused"
    )
