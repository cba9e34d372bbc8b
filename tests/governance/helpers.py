"""Helpers for governance tests: the World the `world` fixture builds, scores, counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from governance import batches, consent, jobs, publications
from governance.enums import JobState
from governance.policy import CheckScores, load_policy
from governance.schema import AuditEvent, Consent, Job
from governance.types import utcnow
from governance.uow import unit_of_work
from pipeline.storage.objects import StoredObject


@dataclass
class World:
    """Ids of what the fixture created, and the session factory to reach it."""

    sf: sessionmaker[Session]
    admin: str
    compliance: str
    operator: str
    reviewer: str
    reviewer_operator: str  # holds reviewer and operator: may request and review, never the same batch
    auditor: str
    subject: str
    portrait: str
    driving: str
    evidence: Path
    evidence_sha256: str

    def grant(self, **overrides: object) -> Consent:
        """Grant a consent for the subject (advertising/web/DE+FR by default, valid for a year)."""
        now = utcnow()
        args: dict[str, object] = {
            "subject_id": self.subject,
            "purposes": ["advertising"],
            "channels": ["web"],
            "territories": ["DE", "FR"],
            "valid_from": now - timedelta(days=1),
            "valid_until": now + timedelta(days=365),
            "evidence_path": self.evidence,
            "evidence_sha256": self.evidence_sha256,
            "evidence_key": "evidence/test.pdf",
            "recorded_by": self.compliance,
        }
        args.update(overrides)
        with unit_of_work(self.sf) as session:
            return consent.grant(session, **args)  # type: ignore[arg-type]

    def batch_job(self, *, requested_by: str | None = None, territory: str = "DE") -> str:
        """A batch with one job (advertising/web/territory); returns the job id."""
        spec = batches.NewJob(
            subject_id=self.subject,
            portrait_asset_id=self.portrait,
            driving_asset_id=self.driving,
            purpose="advertising",
            channel="web",
            territory=territory,
        )
        with unit_of_work(self.sf) as session:
            batch = batches.create_batch(
                session, name="b", requested_by=requested_by or self.operator, jobs=[spec]
            )
            return batches.jobs_of_batch(session, batch.id)[0].id

    def job_awaiting_review(self, *, requested_by: str | None = None) -> str:
        """A job rendered and flagged by the policy (colour drift in the review band)."""
        job_id = self.batch_job(requested_by=requested_by)
        consent_row = self.grant()
        with unit_of_work(self.sf) as session:
            job = jobs.get_job(session, job_id)
            render_and_check(
                session,
                job,
                consent_id=consent_row.id,
                scores=good_scores(colour_drift=7.0),
                flow_run_id="run-1",
                output_bucket="quarantine",
                output_key=f"out/{job_id}.mp4",
                seed=7,
            )
            assert job.state == JobState.awaiting_review
        return job_id

    def publishing_job(self, consent_id: str, *, territory: str = "DE", model_sha256: str = "b" * 64) -> str:
        """A job made under `consent_id`, rendered, approved and claimed for publishing (database only)."""
        job_id = self.batch_job(territory=territory)
        with unit_of_work(self.sf) as session:
            job = jobs.get_job(session, job_id)
            render_and_check(
                session, job, consent_id=consent_id, scores=good_scores(), model_sha256=model_sha256
            )
            jobs.claim(session, job, to=JobState.publishing, flow_run_id="p", actor="system:test")
        return job_id

    def publish(self, job_id: str, payload: int | None = None) -> str:
        """Record the publishing job's publication (a watermark payload allocated unless given); its id."""
        stored = StoredObject(
            bucket="pub", key=f"jobs/{job_id}/video.mp4", sha256="d" * 64, size=10, version_id="v1"
        )
        return record_published(self.sf, job_id, stored, payload=payload)


def record_published(
    sf: sessionmaker[Session],
    job_id: str,
    stored: StoredObject,
    *,
    payload: int | None = None,
    by: str = "system:publish",
) -> str:
    """Record `stored` as the publishing job's publication (a watermark payload allocated unless given); its id."""
    with unit_of_work(sf) as session:
        payload = payload if payload is not None else publications.allocate_payload(session, job_id)
        return publications.record_publication(
            session, job_id=job_id, stored=stored, watermark_payload=payload, published_by=by
        ).id


def render_and_check(
    session: Session,
    job: Job,
    *,
    consent_id: str,
    scores: CheckScores,
    flow_run_id: str = "r",
    output_bucket: str = "q",
    output_key: str | None = None,
    output_sha256: str = "a" * 64,
    seed: int = 1,
    model_sha256: str = "b" * 64,
) -> None:
    """What a render run records for a job, in governance only: claimed, rendered, checks under the default policy."""
    jobs.claim(
        session,
        job,
        to=JobState.rendering,
        flow_run_id=flow_run_id,
        actor="system:test",
        consent_id=consent_id,
    )
    jobs.record_render(
        session,
        job,
        actor="system:test",
        output_bucket=output_bucket,
        output_key=output_key or f"jobs/{job.id}/r.mp4",
        output_sha256=output_sha256,
        seed=seed,
        model_sha256=model_sha256,
        inference_mode="exact",
    )
    jobs.record_checks(
        session, job, actor="system:test", scores=scores, decision=load_policy().evaluate(scores)
    )


# The frame and identity scores of a clean render (colour drift well inside the default policy's bounds).
FRAME_SCORES: dict[str, object] = {
    "binding_distance": 0.03,
    "fidelity_mean_distance": 0.03,
    "fidelity_worst5_distance": 0.05,
    "missing_face_ratio": 0.0,
    "sharpness_ratio": 0.9,
    "flicker_outlier_ratio": 0.0,
    "longest_frozen_run": 1,
    "colour_drift": 2.0,
    "duration_ok": True,
    "fps_ok": True,
    "size_ok": True,
}


# The motion scores of a clean render: the output moves as the driver does.
MOTION_SCORES: dict[str, object] = {
    "motion_mean_distance": 0.015,
    "motion_worst5_distance": 0.02,
    "mouth_correlation": 0.9,
    "mouth_mean_difference": 0.01,
    "eyes_correlation": 0.9,
    "eyes_mean_difference": 0.01,
    "yaw_correlation": 0.9,
    "yaw_mean_difference": 0.5,
    "pitch_correlation": 0.9,
    "pitch_mean_difference": 0.5,
    "roll_correlation": 0.9,
    "roll_mean_difference": 0.5,
}
# The leak scores of a clean render: the output shows the portrait's person, not the driver.
LEAK_SCORES: dict[str, object] = {"driver_portrait_distance": 0.02, "leak_margin": 0.0}


def good_scores(**overrides: object) -> CheckScores:
    """Scores that the default policy approves (frame, identity, motion and leak), with overrides."""
    return CheckScores.model_validate({**FRAME_SCORES, **MOTION_SCORES, **LEAK_SCORES, **overrides})


def audit_actions(sf: sessionmaker[Session]) -> list[str]:
    """Every audit action, in chain order."""
    with sf() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def count(sf: sessionmaker[Session], model: type) -> int:
    """Rows of a table."""
    with sf() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def job_state(sf: sessionmaker[Session], job_id: str) -> JobState:
    """A job's state as committed."""
    with sf() as session:
        return session.get_one(Job, job_id).state


def aware(year: int, month: int, day: int) -> datetime:
    """A UTC datetime at midnight."""
    from datetime import UTC

    return datetime(year, month, day, tzinfo=UTC)
