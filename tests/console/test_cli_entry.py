"""The `likeness` entry point turns usage errors into one line and a non-zero exit code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from console.cli.app import main


def test_missing_option_is_one_line_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["consent", "grant"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip().splitlines() == ["error: Missing option '--subject'."]
    assert captured.out == ""


def test_unknown_command_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["nosuch"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip() == "error: No such command 'nosuch'."


def test_no_arguments_prints_help_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    code = main([])
    captured = capsys.readouterr()
    assert code == 0
    assert "Usage: likeness" in captured.out
    for group in ("consent", "audit", "batch", "review", "verify", "train", "console", "demo"):
        assert group in captured.out


def test_entry_point_turns_prefect_telemetry_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)
    main(["--help"])
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["DO_NOT_TRACK"] == "1"


def test_piped_output_is_wide_enough_for_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    from console.cli.terminal import PIPED_WIDTH, make_console

    monkeypatch.delenv("COLUMNS", raising=False)
    assert make_console().width == PIPED_WIDTH  # pytest captures stdout: not a terminal
    monkeypatch.setenv("COLUMNS", "80")  # what pytest-xdist exports: must not fold ids
    assert make_console().width == PIPED_WIDTH
    monkeypatch.setenv("COLUMNS", "250")
    assert make_console().width == 250


@pytest.mark.parametrize(
    "argv",
    [
        ["batch", "status", "00000000-0000-0000-0000-000000000000"],
        ["audit", "verify", "--actor", "a@example.org"],
    ],
    ids=["flows-group", "governance-group"],
)
def test_malformed_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
) -> None:
    monkeypatch.setenv("LIKENESS_DEVICE", "tpu")
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.strip().splitlines() == [
        "error: invalid LIKENESS_DEVICE: Input should be 'auto', 'cpu' or 'cuda'"
    ]
    assert not (tmp_path / "var").exists()  # refused before anything was created


def test_any_process_using_flows_keeps_prefect_offline() -> None:
    import subprocess
    import sys

    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK")
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, flows.render.flow; print(os.environ['PREFECT_SERVER_ANALYTICS_ENABLED'])",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "false"
