"""Publishing fixtures: a short real clip, and an approved job whose inputs and render lie in real storage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from flows.runtime.root import Runtime
from governance import batches, consent, jobs, users
from governance.database import make_engine, make_session_factory
from governance.enums import AssetKind, JobState
from governance.schema import Asset
from governance.subjects import add_subject
from governance.types import utcnow
from governance.uow import unit_of_work
from pipeline.storage.objects import ObjectStore, object_key
from tests.fixtures.media import H264, ffmpeg
from tests.fixtures.storage import S3ServerHandle
from tests.governance.helpers import good_scores, render_and_check

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "media"
SOURCE_VIDEO = SHARED / "talking_man_320x240_15s.mov"
PORTRAIT = SHARED / "portrait_astronaut.png"


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-second 256x256 H.264 clip of a real talking face (50 frames), made once per worker."""
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    ffmpeg(
        "-i",
        str(SOURCE_VIDEO),
        "-t",
        "2",
        "-vf",
        "crop=240:240,scale=256:256",
        *H264,
        str(path),
    )
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class PublishWorld:
    """An approved job claimed for publishing, with the ids the tests need."""

    runtime: Runtime
    sf: sessionmaker[Session]
    store: ObjectStore
    job_id: str
    consent_id: str
    subject_id: str
    compliance_email: str
    operator_email: str
    render_sha256: str
    model_sha256: str
    render_path: Path

    def new_job(self) -> str:
        """Another job for the same subject, rendered, approved and claimed for publishing."""
        return _approved_job(
            self.sf,
            self.store,
            subject_id=self.subject_id,
            consent_id=self.consent_id,
            operator=self._operator_id(),
            render=self.render_path,
            model_sha256=self.model_sha256,
        )

    def _operator_id(self) -> str:
        with self.sf() as session:
            return users.get_user_by_email(session, self.operator_email).id


def _approved_job(
    sf: sessionmaker[Session],
    store: ObjectStore,
    *,
    subject_id: str,
    consent_id: str,
    operator: str,
    render: Path,
    model_sha256: str,
) -> str:
    with unit_of_work(sf) as session:
        portrait_id, driving_id = _assets(session)
        spec = batches.NewJob(
            subject_id=subject_id,
            portrait_asset_id=portrait_id,
            driving_asset_id=driving_id,
            purpose="advertising",
            channel="web",
            territory="DE",
        )
        batch = batches.create_batch(session, name="publish-test", requested_by=operator, jobs=[spec])
        job = batches.jobs_of_batch(session, batch.id)[0]
        job_id = job.id
    key = object_key(job_id, "render.mp4")
    stored = store.put_file("quarantine", key, render, metadata={"job-id": job_id})
    with unit_of_work(sf) as session:
        job = jobs.get_job(session, job_id)
        render_and_check(
            session,
            job,
            consent_id=consent_id,
            scores=good_scores(),
            flow_run_id="run-r",
            output_bucket=stored.bucket,
            output_key=key,
            output_sha256=stored.sha256,
            seed=7,
            model_sha256=model_sha256,
        )
        assert job.state == JobState.approved
        jobs.claim(session, job, to=JobState.publishing, flow_run_id="run-p", actor="system:test")
    return job_id


def _assets(session: Session) -> tuple[str, str]:
    portrait = session.scalars(select(Asset).where(Asset.kind == AssetKind.portrait)).first()
    driving = session.scalars(select(Asset).where(Asset.kind == AssetKind.driving_video)).first()
    assert portrait is not None and driving is not None
    return portrait.id, driving.id


@pytest.fixture
def publish_world(
    sqlite_db_url: str, s3_server: S3ServerHandle, object_store: ObjectStore, clip: Path, tmp_path: Path
) -> PublishWorld:
    """Users, a subject with consent, inputs and a render in storage, one job claimed for publishing."""
    settings = s3_server.settings(tmp_path / "var", sqlite_db_url, bucket_prefix=object_store.bucket_prefix)
    runtime = Runtime(settings)
    sf = make_session_factory(make_engine(sqlite_db_url))
    evidence = tmp_path / "consent.pdf"
    evidence.write_bytes(b"%PDF-1.4 signed consent form\n")
    driving = tmp_path / "driving.mp4"
    driving.write_bytes(clip.read_bytes())
    with unit_of_work(sf) as session:
        ids = {
            name: users.add_user(session, email=f"{name}@example.org", roles=[name], actor="system:test").id
            for name in ("compliance", "operator", "reviewer", "admin")
        }
        subject = add_subject(
            session, reference="S-P", display_name="Publish Subject", created_by=ids["compliance"]
        )
        subject_id = subject.id
    portrait_obj = object_store.put_file("inputs", "subjects/portrait.png", PORTRAIT)
    driving_obj = object_store.put_file("inputs", "drivers/driving.mp4", driving)
    with unit_of_work(sf) as session:
        batches.register_asset(
            session,
            kind=AssetKind.portrait,
            bucket=portrait_obj.bucket,
            object_key=portrait_obj.key,
            sha256=portrait_obj.sha256,
            size_bytes=portrait_obj.size,
            actor="operator@example.org",
            subject_id=subject_id,
        )
        batches.register_asset(
            session,
            kind=AssetKind.driving_video,
            bucket=driving_obj.bucket,
            object_key=driving_obj.key,
            sha256=driving_obj.sha256,
            size_bytes=driving_obj.size,
            actor="operator@example.org",
        )
        now = utcnow()
        granted = consent.grant(
            session,
            subject_id=subject_id,
            purposes=["advertising"],
            channels=["web"],
            territories=["DE"],
            valid_from=now - timedelta(days=1),
            valid_until=now + timedelta(days=30),
            evidence_path=evidence,
            evidence_sha256=sha256(evidence),
            evidence_key="evidence/consent.pdf",
            recorded_by=ids["compliance"],
        )
        consent_id = granted.id
    model_sha256 = "c" * 64
    job_id = _approved_job(
        sf,
        object_store,
        subject_id=subject_id,
        consent_id=consent_id,
        operator=ids["operator"],
        render=clip,
        model_sha256=model_sha256,
    )
    world = PublishWorld(
        runtime=runtime,
        sf=sf,
        store=object_store,
        job_id=job_id,
        consent_id=consent_id,
        subject_id=subject_id,
        compliance_email="compliance@example.org",
        operator_email="operator@example.org",
        render_sha256=sha256(clip),
        model_sha256=model_sha256,
        render_path=clip,
    )
    return world
