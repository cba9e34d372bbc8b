"""The human gate: flagged jobs wait at `awaiting_review`; the decision (CLI or API) goes through governance.

One batch of six flagged jobs is set up once for the module (rendered and checked already: the render
path is tested in test_batch_flow.py); each test then
decides one job a different way: approved from the CLI (published), four eyes refused from the CLI,
rejected by the reviewer, consent revoked while waiting (refused at delivery), approved without publishing (left to `publish-approved`), and the
review window timing out (rejected by the sweep, audited).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from console.cli.app import app
from flows.publish.flow import publish_approved
from flows.review.flow import review_timeout_sweep
from flows.review.steps import apply_decision
from flows.runtime.root import use_runtime
from governance.enums import JobState
from governance.errors import AlreadyDecided
from tests.fixtures.model import TinyCheckpoint
from tests.fixtures.storage import S3ServerHandle
from tests.flows.conftest import REVIEWER, REVIEWER_OPERATOR, FlowWorld, Media, cli_env, make_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def review_world(
    _sqlite_template: Path,
    s3_server: S3ServerHandle,
    tiny_checkpoint: TinyCheckpoint,
    flow_media: Media,
    tmp_path_factory: pytest.TempPathFactory,
    prefect_api: str,
) -> Iterator[tuple[FlowWorld, list[str], str]]:
    """Four jobs (two subjects) awaiting review, requested by a user who is also a reviewer."""
    root = tmp_path_factory.mktemp("review-world")
    database = root / "likeness.db"
    shutil.copyfile(_sqlite_template, database)
    world = make_world(f"sqlite:///{database}", s3_server, tiny_checkpoint, flow_media, root)
    with use_runtime(world.rt):
        world.add_subject("S-A")
        world.add_subject("S-B")
        world.grant("S-A")
        consent_b = world.grant("S-B")
        job_ids = world.flagged_batch(["S-A", "S-A", "S-B", "S-A", "S-A", "S-A"], requester=REVIEWER_OPERATOR)
        yield world, job_ids, consent_b
    world.rt.close()


def test_approve_from_the_cli_publishes(review_world: tuple[FlowWorld, list[str], str]) -> None:
    world, job_ids, _ = review_world
    job_id = job_ids[0]
    listed = CliRunner().invoke(app, ["review", "list", "--actor", REVIEWER], env=cli_env(world))
    assert listed.exit_code == 0, listed.output
    assert job_id in listed.output

    result = CliRunner().invoke(
        app,
        ["review", "approve", job_id, "--actor", REVIEWER, "--reason", "looks like the subject"],
        env=cli_env(world),
    )

    assert result.exit_code == 0, result.output
    assert "published" in result.output
    assert world.state(job_id) == JobState.published
    assert world.publications(job_id) == 1
    actions = world.actions(job_id)
    assert actions.index("review.approved") < actions.index("job.publishing") < actions.index("job.published")


def test_four_eyes_refused_from_the_cli(review_world: tuple[FlowWorld, list[str], str]) -> None:
    world, job_ids, _ = review_world
    job_id = job_ids[1]

    result = CliRunner().invoke(
        app,
        ["review", "approve", job_id, "--actor", REVIEWER_OPERATOR, "--reason", "mine"],
        env=cli_env(world),
    )

    assert result.exit_code == 1
    assert "four eyes" in result.output
    assert result.output.strip().startswith("error:")
    assert world.state(job_id) == JobState.awaiting_review
    assert world.actions(job_id)[-1] == "review.refused"

    # The reviewer then rejects it; a second decision is refused.
    decision = apply_decision(
        rt=world.rt,
        job_id=job_id,
        reviewer_email=REVIEWER,
        verdict="reject",
        reason="mouth artifacts",
    )
    assert (decision.state, decision.published_key) == ("rejected", None)
    assert world.state(job_id) == JobState.rejected
    assert world.publications(job_id) == 0
    with pytest.raises(AlreadyDecided, match="already decided"):
        apply_decision(
            rt=world.rt,
            job_id=job_id,
            reviewer_email=REVIEWER,
            verdict="approve",
            reason="changed my mind",
        )
    assert world.state(job_id) == JobState.rejected


def test_consent_revoked_during_review_refuses_delivery(
    review_world: tuple[FlowWorld, list[str], str],
) -> None:
    world, job_ids, consent_b = review_world
    job_id = job_ids[2]
    world.revoke(consent_b)

    with use_runtime(world.rt):
        decision = apply_decision(
            rt=world.rt,
            job_id=job_id,
            reviewer_email=REVIEWER,
            verdict="approve",
            reason="fine",
        )
        assert decision.state == "approved" and decision.publishing is not None  # decided; publishing queued
        assert decision.publishing.wait(timeout=300)

    job = world.job(job_id)
    assert job.state == JobState.refused
    assert "revoked" in (job.last_error or "")
    assert world.publications(job_id) == 0
    actions = world.actions(job_id)
    assert actions.index("review.approved") < actions.index("job.refused")


def test_approved_without_publishing_is_picked_up_by_publish_approved(
    review_world: tuple[FlowWorld, list[str], str],
) -> None:
    world, job_ids, _ = review_world
    job_id = job_ids[5]
    decision = apply_decision(
        rt=world.rt,
        job_id=job_id,
        reviewer_email=REVIEWER,
        verdict="approve",
        reason="fine, publish tonight",
        publish=False,
    )
    assert (decision.state, decision.published_key) == ("approved", None)
    assert world.publications(job_id) == 0

    with use_runtime(world.rt):
        results = publish_approved()

    assert results == {job_id: "published"}
    assert world.publications(job_id) == 1
    with use_runtime(world.rt):
        assert publish_approved() == {}


def test_review_window_times_out(review_world: tuple[FlowWorld, list[str], str]) -> None:
    world, job_ids, _ = review_world
    job_id = job_ids[3]

    with use_runtime(world.rt):
        expired = review_timeout_sweep(timeout_hours=1e-6)

    assert job_id in expired
    job = world.job(job_id)
    assert job.state == JobState.rejected
    assert "timed out" in (job.last_error or "")
    actions = world.actions(job_id)
    assert actions[-2:] == ["review.timed_out", "job.rejected"]
    with use_runtime(world.rt):
        assert job_id not in review_timeout_sweep(timeout_hours=1e-6)
