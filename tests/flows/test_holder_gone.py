"""`holder_gone`: the one rule a claim's take-over and the dead-run sweep both apply to a job's holder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from flows.jobs.claims import holder_gone
from flows.runtime.settings import Settings

RT: Any = SimpleNamespace(settings=Settings(reclaim_after_minutes=60))
RUN = "9f0c2a4e-0000-4000-8000-000000000001"


def _asked(answer: bool) -> tuple[list[str], Any]:
    asked: list[str] = []

    def check(run_id: str) -> bool:
        asked.append(run_id)
        return answer

    return asked, check


def test_a_live_holder_keeps_the_job_and_a_dead_one_is_gone() -> None:
    recent = datetime.now(UTC) - timedelta(minutes=5)
    asked, alive = _asked(True)
    assert holder_gone(RT, RUN, held_since=recent, holder_alive=alive) is None
    assert asked == [RUN]
    _, dead = _asked(False)
    assert holder_gone(RT, RUN, held_since=recent, holder_alive=dead) == (
        f"holder run {RUN} is dead (crashed, ended, or its heartbeat stopped)"
    )


def test_the_long_clock_outlasts_a_live_answer_and_the_check_is_not_asked() -> None:
    asked, alive = _asked(True)
    old = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=61)  # naive UTC, as SQLite returns it
    assert holder_gone(RT, RUN, held_since=old, holder_alive=alive) == (
        f"holder run {RUN} silent for more than 60 min"
    )
    assert asked == []


def test_no_holder_or_no_check_counts_as_gone() -> None:
    recent = datetime.now(UTC)
    assert holder_gone(RT, None, held_since=recent, holder_alive=_asked(True)[1]) == "no holder run recorded"
    assert holder_gone(RT, RUN, held_since=recent, holder_alive=None) is not None
