"""Every CLI failure is one line: an unreachable Prefect API, object storage or database.

Each case runs the real `likeness` entry point in a subprocess (logging configured as an operator's
is), against the test's real SQLite database, SeaweedFS and Prefect server with one part taken away:
the command must exit non-zero, print exactly one line on stderr that names the cause, print no
traceback, and leave the state as it was (no decision, no consent, no batch recorded).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from flows.runtime.orchestrator import free_port
from governance import review
from governance.enums import JobState
from governance.schema import Batch, Consent
from governance.uow import unit_of_work
from tests.console.argv import consent_grant
from tests.flows.conftest import COMPLIANCE, OPERATOR, REVIEWER, REVIEWER_OPERATOR, FlowWorld, cli_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
LIKENESS = str(Path(sys.executable).parent / "likeness")
ROOT = Path(__file__).resolve().parents[2]


def likeness(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LIKENESS, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def one_line(done: subprocess.CompletedProcess[str], *expected: str) -> str:
    """The single stderr line of a failed command, checked to contain every `expected` fragment."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    assert len(lines) == 1, lines[-20:]
    assert lines[0].startswith("error: "), lines
    for fragment in expected:
        assert fragment in lines[0], lines[0]
    return lines[0]


def count(world: FlowWorld, model: type) -> int:
    with unit_of_work(world.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def scene(flow_world: FlowWorld) -> tuple[FlowWorld, str, Path, Path]:
    """A subject with a consent, a job awaiting review, an evidence file and a batch file."""
    world = flow_world
    world.add_subject("S-1")
    world.grant("S-1")
    [job_id] = world.flagged_batch(["S-1"], requester=REVIEWER_OPERATOR)
    evidence = world.root / "inputs" / "evidence.txt"
    evidence.write_text("signed form\n", encoding="utf-8")
    return world, job_id, evidence, world.batch_file([{"subject": "S-1"}])


def commands(job_id: str, evidence: Path, batch_file: Path) -> dict[str, list[str]]:
    from models.digest import sha256_file

    return {
        "consent list": ["consent", "list", "--actor", COMPLIANCE],
        "consent grant": consent_grant(evidence, sha256_file(evidence), "--actor", COMPLIANCE),
        "batch submit": ["batch", "submit", str(batch_file), "--actor", OPERATOR],
        "review approve": ["review", "approve", job_id, "--actor", REVIEWER, "--reason", "looks right"],
        "publication list": ["publication", "list", "--actor", COMPLIANCE],
    }


def assert_nothing_recorded(world: FlowWorld, job_id: str, before: tuple[int, int]) -> None:
    assert world.state(job_id) == JobState.awaiting_review
    with unit_of_work(world.sessions) as session:
        assert review.get_decision(session, job_id) is None
    assert (count(world, Consent), count(world, Batch)) == before


def test_an_unreachable_database_is_one_line(
    scene: tuple[FlowWorld, str, Path, Path], tmp_path: Path
) -> None:
    world, job_id, evidence, batch_file = scene
    before = (count(world, Consent), count(world, Batch))
    env = {**os.environ, **cli_env(world)}
    closed = free_port()
    missing = tmp_path / "no-such-dir" / "deeper" / "likeness.db"
    cases = {
        f"postgresql+psycopg://likeness@127.0.0.1:{closed}/likeness": (
            "database error",
            f'"127.0.0.1", port {closed} failed',
        ),
        f"sqlite:///{missing}": ("database is at revision none", "likeness db upgrade"),
    }
    for url, expected in cases.items():
        for args in commands(job_id, evidence, batch_file).values():
            one_line(likeness({**env, "LIKENESS_DATABASE_URL": url}, *args), *expected)
        assert not missing.parent.exists()  # no empty database (or folder) left behind
    assert_nothing_recorded(world, job_id, before)

    # The same database, opened read-only: a plain read works; every write — and every audited read
    # (`publication list` records who read what) — is one line naming the cause, and shows nothing.
    read_only = f"sqlite:///file:{world.rt.settings.database_url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    ro_env = {**env, "LIKENESS_DATABASE_URL": read_only}
    for name, args in commands(job_id, evidence, batch_file).items():
        done = likeness(ro_env, *args)
        if name == "consent list":
            assert done.returncode == 0, (name, done.stderr)
        else:
            one_line(done, "readonly database")
            assert done.stdout.strip() == "" or name == "review approve", (name, done.stdout)
    assert_nothing_recorded(world, job_id, before)


def test_an_unreachable_prefect_api_is_one_line(scene: tuple[FlowWorld, str, Path, Path]) -> None:
    world, job_id, evidence, batch_file = scene
    before = (count(world, Consent), count(world, Batch))
    env = {**os.environ, **cli_env(world), "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    approve = commands(job_id, evidence, batch_file)["review approve"]
    one_line(likeness(env, *approve), "PREFECT_API_URL=http://127.0.0.1:9/api", "unreachable")
    assert_nothing_recorded(world, job_id, before)  # an approval that cannot be queued is not recorded
    # Commands that need no orchestration work without it (governance only).
    assert likeness(env, "consent", "list", "--actor", COMPLIANCE).returncode == 0


def test_unreachable_storage_is_one_line(scene: tuple[FlowWorld, str, Path, Path]) -> None:
    world, job_id, evidence, batch_file = scene
    before = (count(world, Consent), count(world, Batch))
    down = f"127.0.0.1:{free_port()}"
    env = {**os.environ, **cli_env(world), "LIKENESS_S3_ENDPOINT": down}
    cmds = commands(job_id, evidence, batch_file)
    for name in ("consent grant", "batch submit"):
        one_line(likeness(env, *cmds[name]), f"object storage at {down} unreachable")
    assert_nothing_recorded(world, job_id, before)
    for name in ("consent list", "publication list"):  # need no storage
        assert likeness(env, *cmds[name]).returncode == 0, name

    # An approval is a decision: it is recorded, and the publication it queued fails on the storage.
    # The command says so in one line (exit 1) and leaves the job approved for a retry.
    done = likeness(env, *cmds["review approve"])
    one_line(done, f"object storage at {down} unreachable", "retry-publish")
    assert world.state(job_id) in (JobState.approved, JobState.publishing)
    with unit_of_work(world.sessions) as session:
        assert review.get_decision(session, job_id) is not None
