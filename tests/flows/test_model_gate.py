"""Only a registered, active model renders: an unregistered, retired or consent-withdrawn one is refused
before anything is computed, the refusal on the job and in the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from flows.batch.flow import nightly_batch
from flows.render import steps as render_steps
from governance import consent, jobs, models_registry
from governance.enums import JobState, ModelStatus
from governance.models_registry import TrainingClip
from governance.schema import AuditEvent, RegisteredModel
from governance.types import utcnow
from governance.uow import unit_of_work
from tests.flows.conftest import COMPLIANCE, OPERATOR, TINY_MODEL_NAME, FlowWorld


def _refused_before_render(world: FlowWorld, job_id: str, reason: str) -> None:
    job = world.job(job_id)
    assert job.state == JobState.refused
    assert reason in (job.last_error or "")
    assert job.output_key is None and job.model_sha256 is None  # nothing was rendered
    actions = world.actions(job_id)
    assert "likeness.checked" not in actions and "job.rendered" not in actions
    assert actions[-1] == "job.refused"


def _one_job(world: FlowWorld) -> str:
    world.add_subject("S-1")
    world.grant("S-1")
    [job_id] = world.job_ids(world.submit([{"subject": "S-1"}]))
    return job_id


@pytest.mark.slow
def test_a_retired_model_is_refused_by_the_batch_flow(flow_world: FlowWorld) -> None:
    world = flow_world
    job_id = _one_job(world)
    with unit_of_work(world.sessions) as session:
        models_registry.retire_model(
            session, ref=f"{TINY_MODEL_NAME}@1", actor_email=COMPLIANCE, reason="known defect"
        )
    assert nightly_batch(batch_id=world.job(job_id).batch_id) == {job_id: "refused"}
    _refused_before_render(world, job_id, f"model {TINY_MODEL_NAME}@1")
    assert "is retired: known defect" in (world.job(job_id).last_error or "")


def _claimed(world: FlowWorld, job_id: str) -> None:
    with unit_of_work(world.sessions) as session:
        jobs.claim(
            session,
            jobs.get_job(session, job_id),
            to=JobState.rendering,
            flow_run_id="test",
            actor="system:test",
        )


def test_an_unregistered_model_is_refused(flow_world: FlowWorld) -> None:
    world = flow_world
    job_id = _one_job(world)
    with unit_of_work(world.sessions) as session:  # the world's model, registered under another hash
        model = session.scalars(select(RegisteredModel)).one()
        model.sha256 = "0" * 64
    _claimed(world, job_id)
    assert render_steps.verify_model(world.rt, job_id) == JobState.refused
    _refused_before_render(world, job_id, "is not registered: register it with `likeness model register`")


def test_a_model_whose_training_consent_is_revoked_is_refused(flow_world: FlowWorld) -> None:
    world = flow_world
    job_id = _one_job(world)
    subject = world.subjects["S-1"]
    now = utcnow()
    with unit_of_work(world.sessions) as session:
        officer = world.user_id(COMPLIANCE)
        evidence = world.root / "training-consent.txt"
        evidence.write_text("training consent\n", encoding="utf-8")
        from models.digest import sha256_file

        digest = sha256_file(evidence)
        training = consent.grant(
            session,
            subject_id=subject,
            purposes=["model_training"],
            channels=["internal"],
            territories=["WORLD"],
            valid_from=now - timedelta(minutes=1),
            valid_until=None,
            evidence_path=evidence,
            evidence_sha256=digest,
            evidence_key=f"evidence/{digest}",
            recorded_by=officer,
        )
        model = session.scalars(select(RegisteredModel)).one()
        session.delete(model)
        session.flush()
        models_registry.register_model(
            session,
            name=TINY_MODEL_NAME,
            version="2",
            sha256=world.rt.settings.mcnet_checkpoint_sha256 or "",
            config={"image_size": 64},
            actor_email=OPERATOR,
            clips=[
                TrainingClip(
                    sha256="9" * 64,
                    subject_id=subject,
                    split="train",
                    frames=10,
                    bucket="inputs",
                    object_key="training/x.pt",
                    size_bytes=1,
                )
            ],
        )
        training_id = training.id
    _claimed(world, job_id)
    assert render_steps.verify_model(world.rt, job_id) == JobState.rendering  # active: passes
    with unit_of_work(world.sessions) as session:
        consent.revoke(
            session, consent_id=training_id, revoked_by=world.user_id(COMPLIANCE), reason="withdrawn"
        )
        assert session.scalars(select(RegisteredModel)).one().status == ModelStatus.consent_withdrawn
        withdrawn = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "model.consent_withdrawn")
        ).one()
        assert withdrawn.details["consent_id"] == training_id
    assert render_steps.verify_model(world.rt, job_id) == JobState.refused
    _refused_before_render(world, job_id, "is consent_withdrawn")
