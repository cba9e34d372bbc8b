"""The nightly batch end to end: publish once, every refusal before rendering, checks that reject.

Real SQLite (and PostgreSQL for the happy path), the real S3 server, real ffmpeg, the tiny MCNet, and
Prefect's test API. Each test asserts the job's state, its recorded reason and what storage holds.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from console.cli.app import app
from flows.batch.flow import nightly_batch
from flows.maintenance import retention_sweep
from flows.takedown.flow import takedown
from governance.audit import record as audit
from governance.enums import JobState, Outcome
from governance.schema import CheckResult, Publication
from governance.types import utcnow
from governance.uow import unit_of_work
from tests.flows.conftest import OPERATOR, FlowWorld, cli_env


def in_order(actions: list[str], expected: list[str]) -> bool:
    """Whether `expected` appears in `actions` as a subsequence (other events may come between)."""
    remaining = iter(actions)
    return all(any(action == wanted for action in remaining) for wanted in expected)


@pytest.mark.slow
def test_happy_path_publishes_once_then_takedown_and_retention(flow_world_any_db: FlowWorld) -> None:
    world = flow_world_any_db
    world.add_subject("S-1")
    consent_id = world.grant("S-1")
    env = cli_env(world)
    submitted = CliRunner().invoke(
        app, ["batch", "submit", str(world.batch_file([{"subject": "S-1"}])), "--actor", OPERATOR], env=env
    )
    assert submitted.exit_code == 0, submitted.output
    batch_id = re.search(r"batch ([0-9a-f-]{36}) submitted", submitted.output).group(1)  # type: ignore[union-attr]
    [job_id] = world.job_ids(batch_id)

    ran = CliRunner().invoke(app, ["batch", "run", batch_id], env=env)

    assert ran.exit_code == 0, ran.output
    job = world.job(job_id)
    assert job.state == JobState.published
    assert job.outcome == Outcome.auto_approve
    assert job.consent_id == consent_id
    assert job.model_sha256 == world.rt.settings.mcnet_checkpoint_sha256
    assert job.output_key == f"jobs/{job_id}/render.mp4"
    assert world.rt.store.exists("quarantine", job.output_key)
    with unit_of_work(world.sessions) as session:
        publication = session.scalars(select(Publication).where(Publication.job_id == job_id)).one()
        published_key = publication.object_key
        assert audit.verify_chain(session).ok
    assert world.rt.store.exists("published", published_key)
    status = CliRunner().invoke(app, ["batch", "status", batch_id], env=env)
    assert status.exit_code == 0, status.output
    assert job_id[:8] in status.output and published_key in status.output  # COLUMNS=250: nothing folds
    assert in_order(
        world.actions(job_id),
        [
            "job.submitted",
            "job.rendering",
            "consent.verified",
            "likeness.checked",
            "job.rendered",
            "job.approved",
            "job.publishing",
            "consent.verified",
            "job.published",
            "publication.created",
        ],
    )

    # A re-run finds nothing unfinished and publishes nothing twice.
    assert nightly_batch(batch_id=batch_id) == {}
    assert world.publications(job_id) == 1

    # Revocation: the takedown sweep finds the now-uncovered publication and takes it down.
    world.revoke(consent_id)
    assert takedown() == [job_id]
    assert world.state(job_id) == JobState.taken_down
    assert not world.rt.store.exists("published", published_key)
    assert "publication.taken_down" in world.actions(job_id)
    assert takedown() == []

    # Retention: the job has ended, so its render and inputs go; deleting twice deletes nothing.
    report = retention_sweep(days=0)
    assert report["outputs"] == [job.output_key]
    assert len(report["inputs"]) == 2
    assert not world.rt.store.exists("quarantine", job.output_key)
    assert "retention.output_deleted" in world.actions(job_id)
    assert retention_sweep(days=0) == {"outputs": [], "inputs": []}


@pytest.mark.slow
def test_every_refusal_before_rendering(flow_world_any_db: FlowWorld) -> None:
    world = flow_world_any_db
    for reference in ("S-NONE", "S-EXPIRED", "S-SCOPE", "S-REVOKED"):
        world.add_subject(reference)
    world.add_subject("S-STRANGER")  # reference photo: the demo person; portrait: somebody else
    past = utcnow() - timedelta(days=30)
    world.grant("S-EXPIRED", valid_from=past, valid_until=past + timedelta(days=10), now=past)
    world.grant("S-SCOPE", channels=["social_media"])
    world.revoke(world.grant("S-REVOKED"))
    world.grant("S-STRANGER")
    batch_id = world.submit(
        [
            {"subject": "S-NONE"},
            {"subject": "S-EXPIRED"},
            {"subject": "S-SCOPE"},
            {"subject": "S-REVOKED"},
            {"subject": "S-STRANGER", "portrait": str(world.media.stranger)},
        ]
    )
    job_ids = world.job_ids(batch_id)

    result = nightly_batch(batch_id=batch_id)

    assert result == {job_id: "refused" for job_id in job_ids}
    expected = ["has no consent", "expired", "channel 'web'", "revoked", "does not match"]
    for job_id, words in zip(job_ids, expected, strict=True):
        job = world.job(job_id)
        assert job.state == JobState.refused
        assert words in (job.last_error or ""), (words, job.last_error)
        assert "\n" not in (job.last_error or "")
        assert job.output_key is None  # nothing was rendered
        assert "job.refused" in world.actions(job_id)
    stranger = world.actions(job_ids[-1])
    assert "likeness.checked" in stranger and "job.rendered" not in stranger
    assert (
        list(world.rt.store.client.list_objects(world.rt.store.bucket_name("quarantine"), recursive=True))
        == []
    )


@pytest.mark.slow
def test_checks_failing_reject_the_job(flow_world: FlowWorld) -> None:
    world = flow_world
    # The default policy, with identity fidelity held to zero drift: a tiny random model cannot meet it.
    world.use_policy(
        loose=False, identity={"fidelity_mean_distance": {"review_above": 0.0, "reject_above": 0.0}}
    )
    world.add_subject("S-1")
    world.grant("S-1")
    batch_id = world.submit([{"subject": "S-1"}])
    [job_id] = world.job_ids(batch_id)

    assert nightly_batch(batch_id=batch_id) == {job_id: "rejected"}

    job = world.job(job_id)
    assert job.outcome == Outcome.reject
    assert (job.last_error or "").startswith("rejected by policy: ")
    with unit_of_work(world.sessions) as session:
        check = session.scalars(select(CheckResult).where(CheckResult.job_id == job_id)).one()
        assert check.outcome == Outcome.reject
        assert check.policy_version == "test-default@v2"
        # motion and leak were scored and recorded with the landmark model that measured them
        assert {"identity", "artifacts", "motion", "leak", "versions"} <= set(check.details)
        assert check.details["versions"]["landmark_model"]["file"] == "shape_predictor_68_face_landmarks.dat"
        assert len(check.details["motion"]["landmark_model"]["sha256"]) == 64
        assert "motion_mean_distance" in check.scores and check.thresholds["rules"]["motion"] is not None
        assert any(
            reason.startswith("fidelity_mean_distance") and "reject bound 0" in reason
            for reason in check.reasons
        ), check.reasons
    assert world.publications(job_id) == 0
    assert "job.rejected" in world.actions(job_id)
