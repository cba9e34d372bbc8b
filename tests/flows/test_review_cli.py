"""`likeness review` from the CLI: reads are audited and need a reviewer; an approval that consent no
longer allows exits 1 with one line naming the consent and what no longer covers the use."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from console.cli.app import app
from flows.runtime.root import use_runtime
from governance import consent
from governance.enums import JobState
from governance.schema import AuditEvent
from governance.uow import unit_of_work
from tests.fixtures.model import TinyCheckpoint
from tests.fixtures.storage import S3ServerHandle
from tests.flows.conftest import (
    COMPLIANCE,
    OPERATOR,
    REVIEWER,
    REVIEWER_OPERATOR,
    FlowWorld,
    Media,
    cli_env,
    make_world,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(
    _sqlite_template: Path,
    s3_server: S3ServerHandle,
    tiny_checkpoint: TinyCheckpoint,
    flow_media: Media,
    tmp_path_factory: pytest.TempPathFactory,
    prefect_api: str,
) -> Iterator[tuple[FlowWorld, list[str], dict[str, str]]]:
    """Three flagged jobs: two of subject S-A (consent narrowed later), one of S-B (consent revoked later)."""
    root = tmp_path_factory.mktemp("review-cli")
    database = root / "likeness.db"
    shutil.copyfile(_sqlite_template, database)
    made = make_world(f"sqlite:///{database}", s3_server, tiny_checkpoint, flow_media, root)
    with use_runtime(made.rt):
        made.add_subject("S-A")
        made.add_subject("S-B")
        consents = {"S-A": made.grant("S-A"), "S-B": made.grant("S-B")}
        job_ids = made.flagged_batch(["S-A", "S-B", "S-A"], requester=REVIEWER_OPERATOR)
        yield made, job_ids, consents
    made.rt.close()


def reads(world: FlowWorld) -> list[dict[str, object]]:
    with unit_of_work(world.sessions) as session:
        return [
            {"actor": e.actor, "job_id": e.job_id, **e.details}
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.action == "access.read").order_by(AuditEvent.seq)
            )
        ]


def test_review_reads_need_a_reviewer_and_are_audited(
    world: tuple[FlowWorld, list[str], dict[str, str]], tmp_path: Path
) -> None:
    made, job_ids, _ = world
    env = cli_env(made)
    runner = CliRunner()
    listed = runner.invoke(app, ["review", "list", "--actor", REVIEWER], env=env)
    assert listed.exit_code == 0, listed.output
    assert job_ids[0] in listed.output
    assert reads(made)[-1]["what"] == "review.list" and reads(made)[-1]["actor"] == REVIEWER
    assert set(job_ids) <= set(reads(made)[-1]["jobs"])  # type: ignore[arg-type]

    denied = runner.invoke(app, ["review", "show", job_ids[0], "--actor", OPERATOR], env=env)
    assert denied.exit_code == 1
    assert denied.output.strip() == f"error: user {OPERATOR} lacks role reviewer or auditor for review.show"
    missing = runner.invoke(app, ["review", "list"], env={**env, "LIKENESS_ACTOR": ""})
    assert missing.exit_code != 0 and "--actor" in missing.output

    target = tmp_path / "watch.mp4"
    shown = runner.invoke(
        app, ["review", "show", job_ids[0], "--actor", REVIEWER, "--download", str(target)], env=env
    )
    assert shown.exit_code == 0, shown.output
    assert target.is_file()
    last = reads(made)[-1]
    assert (last["what"], last["job_id"], last["actor"]) == ("review.download", job_ids[0], REVIEWER)
    assert "render" in last


def test_approval_after_revocation_exits_1_naming_the_consent(
    world: tuple[FlowWorld, list[str], dict[str, str]],
) -> None:
    made, job_ids, consents = world
    made.revoke(consents["S-B"])
    result = CliRunner().invoke(
        app, ["review", "approve", job_ids[1], "--actor", REVIEWER, "--reason", "fine"], env=cli_env(made)
    )
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert "\n" not in line
    assert line.startswith(
        f"error: job {job_ids[1]} approved by {REVIEWER} but refused before publishing: "
        f"consent {consents['S-B']} (version 1) was revoked at "
    )
    assert line.endswith(": subject withdrew consent (the job's use is advertising/web/DE)")
    assert made.state(job_ids[1]) == JobState.refused and made.publications(job_ids[1]) == 0


def test_approval_after_narrowing_exits_1_naming_what_no_longer_covers(
    world: tuple[FlowWorld, list[str], dict[str, str]],
) -> None:
    made, job_ids, consents = world
    with unit_of_work(made.sessions) as session:
        amended = consent.amend(
            session,
            consent_id=consents["S-A"],
            recorded_by=made.user_id(COMPLIANCE),
            reason="France only from now on",
            territories=["FR"],
        )
        amended_id = amended.id
    result = CliRunner().invoke(
        app, ["review", "approve", job_ids[2], "--actor", REVIEWER, "--reason", "fine"], env=cli_env(made)
    )
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (
        f"error: job {job_ids[2]} approved by {REVIEWER} but refused before publishing: consent {amended_id} "
        f"(version 2 of lineage {consents['S-A']}) no longer covers territory 'DE' (territories now FR) "
        "(the job's use is advertising/web/DE)"
    )
    assert made.state(job_ids[2]) == JobState.refused
