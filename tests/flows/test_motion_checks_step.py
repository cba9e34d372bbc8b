"""The render flow's check step scores motion and driver leak and records them (plain steps, no Prefect)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from flows.render import steps as render_steps
from governance import jobs as job_service
from governance.enums import JobState, Outcome
from governance.schema import CheckResult
from governance.uow import unit_of_work
from pipeline.storage.objects import object_key
from tests.fixtures.model import TinyCheckpoint
from tests.fixtures.storage import S3ServerHandle
from tests.flows.conftest import Media, make_world


def test_evaluate_checks_records_motion_leak_and_the_landmark_model(
    sqlite_db_url: str,
    s3_server: S3ServerHandle,
    tiny_checkpoint: TinyCheckpoint,
    flow_media: Media,
    tmp_path: Path,
) -> None:
    world = make_world(sqlite_db_url, s3_server, tiny_checkpoint, flow_media, tmp_path)
    try:
        world.use_policy(loose=False)  # the default rules, motion and leak included
        world.add_subject("S-1")
        world.grant("S-1")
        [job_id] = world.job_ids(world.submit([{"subject": "S-1"}]))
        rt = world.rt
        assert render_steps.claim_render(rt, job_id, run_id="run-1") == JobState.rendering
        assert render_steps.verify_consent(rt, job_id) == JobState.rendering
        assert render_steps.bind_likeness(rt, job_id) == JobState.rendering
        # The "render" is the driving clip itself (the portrait's size: a full-frame output), stored as
        # the render step would (the real render step needs Prefect's gpu slot).
        render = rt.store.put_file(
            "quarantine", object_key(job_id, render_steps.RENDER_NAME), flow_media.driving
        )
        with unit_of_work(world.sessions) as session:
            job_service.record_render(
                session,
                job_service.get_job(session, job_id),
                actor="system:test",
                output_bucket=render.bucket,
                output_key=render.key,
                output_sha256=render.sha256,
                seed=1,
                model_sha256="0" * 64,
                inference_mode="exact",
            )

        state = render_steps.evaluate_checks(rt, job_id)

        assert state in (JobState.approved, JobState.awaiting_review, JobState.rejected)
        with unit_of_work(world.sessions) as session:
            check = session.scalars(select(CheckResult).where(CheckResult.job_id == job_id)).one()
            assert check.outcome in (Outcome.auto_approve, Outcome.needs_review, Outcome.reject)
            assert {"identity", "artifacts", "motion", "leak", "versions"} <= set(check.details)
            model = check.details["motion"]["landmark_model"]
            assert model["file"] == "shape_predictor_68_face_landmarks.dat" and len(model["sha256"]) == 64
            assert check.details["versions"]["landmark_model"] == model
            assert check.details["motion"]["every"] == rt.settings.fidelity_every
            assert "motion_mean_distance" in check.scores and "driver_portrait_distance" in check.scores
            assert check.thresholds["rules"]["motion"]["mouth_correlation"]["reject_below"] == 0.3
            # the driver's own clip follows the driver: its landmark motion is near zero and nothing rejects it
            assert check.scores["motion_mean_distance"] < 0.025, check.scores
            assert not any("reject bound" in r and r.startswith(("motion_", "mouth_")) for r in check.reasons)
            # the driver is the subject (the demo speaker drives his own portrait): no leak verdict
            assert not any(reason.startswith("leak_margin") for reason in check.reasons)
    finally:
        world.rt.close()
