"""Start-up cost of the CLI: governance commands import none of the heavy packages, help lists every group.

Each command runs in a fresh interpreter (the only way to see what a command really imports), on a real
migrated SQLite database, and reports the heavy modules left in `sys.modules` after it finished.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import app as cli

HEAVY = ("torch", "prefect", "cv2", "deepface", "onnxruntime")
PROBE = (
    "import json, sys\n"
    "from console.cli.app import main\n"
    "code = main(sys.argv[1:])\n"
    f"print('HEAVY=' + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    "sys.exit(code)\n"
)


def likeness(env: dict[str, str], *argv: str, stdin: str | None = None) -> tuple[int, str, list[str]]:
    """Run `likeness ARGV` in a new interpreter; (exit code, output, heavy modules it imported)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.splitlines()
    heavy = next((json.loads(line[6:]) for line in lines if line.startswith("HEAVY=")), None)
    assert heavy is not None, done.stderr[-2000:]
    return done.returncode, done.stdout + done.stderr, heavy


@pytest.fixture
def env(sqlite_db_url: str, tmp_path: Path) -> dict[str, str]:
    values = {key: value for key, value in os.environ.items() if not key.startswith("LIKENESS_")}
    values.update(
        {"LIKENESS_DATABASE_URL": sqlite_db_url, "LIKENESS_VAR_DIR": str(tmp_path / "var"), "COLUMNS": "200"}
    )
    return values


def test_governance_commands_import_no_heavy_package(env: dict[str, str]) -> None:
    admin = "--actor=admin@example.org"
    commands = [
        (
            ["user", "add", "admin@example.org", "--role", "admin", "--role", "auditor", "--password-stdin"],
            "long enough password\n",
        ),
        (["user", "list", admin], None),
        (["subject", "add", "--reference", "S-9", "--name", "Nine", admin], None),
        (["subject", "list", admin], None),
        (["consent", "list", admin], None),
        (["audit", "verify", "--chain-only", admin], None),
        (["audit", "query", admin], None),
    ]
    for argv, stdin in commands:
        code, output, heavy = likeness(env, *argv, stdin=stdin)
        assert code == 0, f"{argv}: {output[-2000:]}"
        assert heavy == [], f"`likeness {' '.join(argv)}` imported {heavy}"


def test_help_lists_every_group_without_importing_it(env: dict[str, str]) -> None:
    code, output, heavy = likeness(env, "--help")
    assert code == 0 and heavy == []
    for name, (_, help_text) in cli.COMMANDS.items():
        assert name in output and help_text.split()[0] in output
    modules = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from console.cli.app import main; main(['--help']); "
            "print(sorted(m for m in sys.modules if m.startswith('console.commands.')))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()[-1]
    assert modules == "[]"  # not one command module was imported to list them


def test_a_heavy_group_still_loads_when_invoked(env: dict[str, str]) -> None:
    code, output, _ = likeness(env, "train", "--help")
    assert code == 0 and "Usage: likeness train" in output


def test_the_table_help_is_each_groups_own_help() -> None:
    for name in cli.COMMANDS:
        command = cli.load_command(name)
        own = (command.help or "").strip().splitlines()[0]
        assert cli.COMMANDS[name][1] == own, name
