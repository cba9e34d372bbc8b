"""`LIKENESS_RETRY_DELAYS`: the operator's back-off between attempts at a transient failure.

Read once, when the flows are imported, so the checks run fresh interpreters: what a worker with the
variable in its environment gives its tasks, and what a CLI command says when the value is malformed
(one line naming the variable, exit 1, no traceback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.runtime.retry import DEFAULT_RETRY_DELAYS, RETRY_DELAYS_VARIABLE, parse_retry_delays
from flows.runtime.settings import SettingsInvalid

ROOT = Path(__file__).resolve().parents[2]
LIKENESS = str(Path(sys.executable).parent / "likeness")
TASK_OPTIONS = """
import json
from flows.render.flow import evaluate_checks, render_video
print(json.dumps([[t.retries, t.retry_delay_seconds] for t in (render_video, evaluate_checks)]))
"""


def _env(value: str | None) -> dict[str, str]:
    env = {key: val for key, val in os.environ.items() if key != RETRY_DELAYS_VARIABLE}
    if value is not None:
        env[RETRY_DELAYS_VARIABLE] = value
    return env


def test_unset_or_blank_is_the_documented_default() -> None:
    assert parse_retry_delays(None) == [2.0, 10.0, 30.0] == list(DEFAULT_RETRY_DELAYS)
    assert parse_retry_delays("  ") == [2.0, 10.0, 30.0]
    assert parse_retry_delays("0.5, 1,4") == [0.5, 1.0, 4.0]
    assert parse_retry_delays("0") == [0.0]


@pytest.mark.parametrize("value", ["abc", "1,,2", "-1", "1,nan", "inf", ",".join(["1"] * 11)])
def test_a_malformed_value_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(SettingsInvalid) as refused:
        parse_retry_delays(value)
    assert str(refused.value).startswith(f"{RETRY_DELAYS_VARIABLE}={value!r}: expected")


def test_the_tasks_of_a_worker_take_the_configured_delays() -> None:
    for value, expected in (("0.5,1", [[2, [0.5, 1.0]]] * 2), (None, [[3, [2.0, 10.0, 30.0]]] * 2)):
        done = subprocess.run(
            [sys.executable, "-c", TASK_OPTIONS], env=_env(value), cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == expected, value


def test_a_cli_command_with_a_malformed_value_says_so_in_one_line() -> None:
    done = subprocess.run(
        [LIKENESS, "batch", "run", "no-such-batch"],
        env=_env("2,ten"),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {RETRY_DELAYS_VARIABLE}='2,ten': expected 1 to 10 seconds separated by commas, e.g. 2,10,30"
    ]
