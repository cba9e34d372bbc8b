"""The flows' world: real database, real S3 server, real ffmpeg, a tiny MCNet, Prefect's test API.

`flow_world` builds settings and a runtime on a fresh migrated database (SQLite by default; tests that
ask for `db_url` run on both backends), a bucket prefix of their own on the session's SeaweedFS, the
tiny random checkpoint, and users of each role. Media come from the project's own licensed demo clip
(`flows/demo/assets`): a reference frame, a portrait frame and one second of driving video of the
same person; a stranger's portrait comes from the shared sample media.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from flows.batch.batchfile import read_batch_file
from flows.batch.submission import submit_batch
from flows.runtime.root import Runtime, use_runtime
from governance import batches, consent, models_registry, subjects, users
from governance.enums import JobState
from governance.policy import DEFAULT_POLICY_PATH
from governance.schema import AuditEvent, Job, Publication
from governance.types import utcnow
from governance.uow import unit_of_work
from tests.fixtures.env import services_env
from tests.fixtures.media import H264, ffmpeg
from tests.fixtures.model import TinyCheckpoint
from tests.fixtures.storage import S3ServerHandle

ROOT = Path(__file__).resolve().parents[2]
DEMO_CLIP = ROOT / "flows" / "demo" / "assets" / "talking_man_192.mp4"
STRANGER = ROOT / ".." / "shared" / "media" / "portrait_grace_hopper.jpg"
COMPLIANCE, OPERATOR, REVIEWER = "compliance@example.org", "operator@example.org", "reviewer@example.org"
REVIEWER_OPERATOR = "reviewer-operator@example.org"
COVERED = {"purpose": "advertising", "channel": "web", "territory": "DE"}
TINY_MODEL_NAME = "tiny-test"


@dataclass(frozen=True)
class Media:
    """Input files of one real person (and one stranger)."""

    reference: Path
    portrait: Path
    driving: Path
    stranger: Path


@pytest.fixture(scope="session")
def flow_media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    """Frames 0 and 40 of the demo clip as photos, frames 300-315 (0.6 s) as the driving video."""
    folder = tmp_path_factory.mktemp("flow-media")
    reference, portrait, driving = folder / "reference.png", folder / "portrait.png", folder / "driving.mp4"
    ffmpeg("-i", str(DEMO_CLIP), "-vf", r"select=eq(n\,0)", "-frames:v", "1", str(reference))
    ffmpeg("-i", str(DEMO_CLIP), "-vf", r"select=eq(n\,40)", "-frames:v", "1", str(portrait))
    ffmpeg(
        "-i",
        str(DEMO_CLIP),
        "-vf",
        r"select=between(n\,300\,315),setpts=N/25/TB",
        "-r",
        "25",
        *H264,
        str(driving),
    )
    stranger = folder / "stranger.jpg"
    stranger.write_bytes(STRANGER.read_bytes())
    return Media(reference=reference, portrait=portrait, driving=driving, stranger=stranger)


def write_policy(
    path: Path,
    *,
    loose: bool,
    always_review: bool = False,
    identity: dict[str, dict[str, float]] | None = None,
) -> Path:
    """The default policy, or a loose one (a tiny random model's output passes), optionally always-review;
    `identity` overrides bounds of the identity rules."""
    rules = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    rules["name"] = "test-loose" if loose else "test-default"
    rules["always_review"] = always_review
    if loose:  # every output check passes; the likeness binding (portrait vs reference) stays as it is
        for group in ("identity", "artifacts"):
            for name, bounds in rules[group].items():
                if name == "binding_distance":
                    continue
                for key in bounds:
                    bounds[key] = 0.0 if key.endswith("_below") else (1.0 if "ratio" in name else 1.0e6)
        for group in ("motion", "leak"):  # a tiny random model moves nothing: leave motion unjudged
            rules.pop(group, None)
    rules["identity"].update(identity or {})
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return path


class Killed(BaseException):
    """Stands for SIGKILL: escapes every `except Exception`, so no handler of ours runs."""


@dataclass
class FlowWorld:
    """A runtime on real services, plus helpers to set up subjects, consents and batches."""

    rt: Runtime
    root: Path
    media: Media
    subjects: dict[str, str] = field(default_factory=dict)

    @property
    def sessions(self) -> Any:
        return self.rt.sessions

    def user_id(self, email: str) -> str:
        with unit_of_work(self.sessions) as session:
            return users.get_user_by_email(session, email).id

    def add_subject(self, reference: str, *, photo: Path | None = None) -> str:
        """A subject with a reference photo (default: the demo person's reference frame) in storage."""
        photo = photo or self.media.reference
        stored = self.rt.store.put_file("inputs", f"references/{uuid.uuid4().hex}.png", photo)
        officer = self.user_id(COMPLIANCE)
        with unit_of_work(self.sessions) as session:
            subject = subjects.add_subject(
                session, reference=reference, display_name=f"Subject {reference}", created_by=officer
            )
            subjects.add_reference(
                session,
                subject_id=subject.id,
                bucket=stored.bucket,
                object_key=stored.key,
                sha256=stored.sha256,
                created_by=officer,
            )
            self.subjects[reference] = subject.id
            return subject.id

    def grant(
        self,
        reference: str,
        *,
        channels: list[str] | None = None,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
        now: datetime | None = None,
    ) -> str:
        """A consent for advertising in DE (web by default), valid a year unless told otherwise."""
        evidence = self.root / f"evidence-{uuid.uuid4().hex}.txt"
        evidence.write_text(f"consent form of {reference}\n", encoding="utf-8")
        from models.digest import sha256_file

        digest = sha256_file(evidence)
        start = valid_from or utcnow() - timedelta(minutes=1)
        with unit_of_work(self.sessions) as session:
            granted = consent.grant(
                session,
                subject_id=self.subjects[reference],
                purposes=["advertising"],
                channels=channels or ["web"],
                territories=["DE"],
                valid_from=start,
                valid_until=valid_until if valid_until is not None else utcnow() + timedelta(days=365),
                evidence_path=evidence,
                evidence_sha256=digest,
                evidence_key=f"evidence/{digest}.txt",
                recorded_by=self.user_id(COMPLIANCE),
                now=now,
            )
            return granted.id

    def revoke(self, consent_id: str) -> None:
        with unit_of_work(self.sessions) as session:
            consent.revoke(
                session,
                consent_id=consent_id,
                revoked_by=self.user_id(COMPLIANCE),
                reason="subject withdrew consent",
            )

    def one_job(self, reference: str = "S-1") -> tuple[str, str]:
        """A consenting subject and a batch of one job for them (the covered use): (batch id, job id)."""
        self.add_subject(reference)
        self.grant(reference)
        batch_id = self.submit([{"subject": reference}])
        [job_id] = self.job_ids(batch_id)
        return batch_id, job_id

    def submit(self, jobs: list[dict[str, Any]], *, requester: str = OPERATOR) -> str:
        """Write a batch YAML into the allowed input folder and submit it; returns the batch id."""
        return submit_batch(self.rt, read_batch_file(self.batch_file(jobs)), requested_by_email=requester)

    def media_copy(self, index: int) -> dict[str, str]:
        """The demo person's portrait and driving clip copied under new names (same bytes): a batch file
        refuses two jobs with the same media, use and seed, so identical renders need distinct paths."""
        folder = self.root / "inputs" / f"copy-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        portrait = folder / self.media.portrait.name
        driving = folder / self.media.driving.name
        shutil.copyfile(self.media.portrait, portrait)
        shutil.copyfile(self.media.driving, driving)
        return {"portrait": str(portrait), "driving": str(driving)}

    def batch_file(self, jobs: list[dict[str, Any]]) -> Path:
        """A batch YAML in the allowed input folder (defaults: the demo person's media, the covered use)."""
        rows = []
        for job in jobs:
            row = {"portrait": str(self.media.portrait), "driving": str(self.media.driving), **COVERED, **job}
            rows.append({k: str(v) for k, v in row.items()})
        path = self.root / "inputs" / f"batch-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump({"name": path.stem, "jobs": rows}), encoding="utf-8")
        return path

    def job_ids(self, batch_id: str) -> list[str]:
        with unit_of_work(self.sessions) as session:
            return [job.id for job in batches.jobs_of_batch(session, batch_id)]

    def job(self, job_id: str) -> Job:
        with unit_of_work(self.sessions) as session:
            found = session.get(Job, job_id)
            assert found is not None
            session.expunge(found)
            return found

    def state(self, job_id: str) -> JobState:
        return JobState(self.job(job_id).state)

    def actions(self, job_id: str) -> list[str]:
        """The job's audit actions, in chain order."""
        with unit_of_work(self.sessions) as session:
            statement = select(AuditEvent.action).where(AuditEvent.job_id == job_id).order_by(AuditEvent.seq)
            return list(session.scalars(statement))

    def publications(self, job_id: str) -> int:
        with unit_of_work(self.sessions) as session:
            return int(
                session.scalar(
                    select(func.count()).select_from(Publication).where(Publication.job_id == job_id)
                )
                or 0
            )

    def flagged_batch(self, references: list[str], *, requester: str) -> list[str]:
        """Jobs already rendered and flagged for review (no model run: the gate's tests start here).

        The "render" is the real driving clip of the consenting person, stored in quarantine under the
        job's key; the checks are recorded with good scores under an always-review policy.
        """
        from governance import jobs as job_service
        from governance.enums import AssetKind
        from governance.policy import CheckScores, load_policy
        from pipeline.storage.objects import object_key

        store = self.rt.store
        portrait = store.put_file("inputs", f"inputs/{uuid.uuid4().hex}.png", self.media.portrait)
        driving = store.put_file("inputs", f"inputs/{uuid.uuid4().hex}.mp4", self.media.driving)
        policy = load_policy(write_policy(self.root / "review-policy.yaml", loose=True, always_review=True))
        scores = CheckScores(
            binding_distance=0.03,
            fidelity_mean_distance=0.03,
            fidelity_worst5_distance=0.05,
            missing_face_ratio=0.0,
            sharpness_ratio=0.9,
            flicker_outlier_ratio=0.0,
            longest_frozen_run=1,
            colour_drift=2.0,
            duration_ok=True,
            fps_ok=True,
            size_ok=True,
        )
        with unit_of_work(self.sessions) as session:
            requester_id = users.get_user_by_email(session, requester).id
            specs = []
            for reference in references:
                subject_id = self.subjects[reference]
                assets = [
                    batches.register_asset(
                        session,
                        kind=kind,
                        bucket=stored.bucket,
                        object_key=stored.key,
                        sha256=stored.sha256,
                        size_bytes=stored.size,
                        actor=requester,
                        subject_id=subject_id,
                    ).id
                    for kind, stored in ((AssetKind.portrait, portrait), (AssetKind.driving_video, driving))
                ]
                specs.append(
                    batches.NewJob(
                        subject_id=subject_id,
                        portrait_asset_id=assets[0],
                        driving_asset_id=assets[1],
                        **COVERED,
                    )
                )
            batch = batches.create_batch(session, name="flagged", requested_by=requester_id, jobs=specs)
            job_ids = [job.id for job in batches.jobs_of_batch(session, batch.id)]
        for job_id in job_ids:
            render = store.put_file("quarantine", object_key(job_id, "render.mp4"), self.media.driving)
            with unit_of_work(self.sessions) as session:
                job = job_service.get_job(session, job_id)
                found = consent.verify(session, subject_id=job.subject_id, **COVERED)
                job_service.claim(
                    session,
                    job,
                    to=JobState.rendering,
                    flow_run_id="test-render",
                    actor="system:test",
                    consent_id=found.id,
                )
                job_service.record_render(
                    session,
                    job,
                    actor="system:test",
                    output_bucket=render.bucket,
                    output_key=render.key,
                    output_sha256=render.sha256,
                    seed=1,
                    model_sha256="0" * 64,
                    inference_mode="exact",
                )
                job_service.record_checks(
                    session, job, actor="system:test", scores=scores, decision=policy.evaluate(scores)
                )
                assert job.state == JobState.awaiting_review
        return job_ids

    def use_policy(
        self, *, loose: bool, always_review: bool = False, identity: dict[str, dict[str, float]] | None = None
    ) -> None:
        """Swap the policy in force (a new runtime part is built on next use)."""
        path = write_policy(
            self.root / f"policy-{uuid.uuid4().hex[:6]}.yaml",
            loose=loose,
            always_review=always_review,
            identity=identity,
        )
        self.rt.settings = self.rt.settings.model_copy(update={"policy_path": path})
        self.rt._parts.pop("policy", None)
        self.rt._parts.pop("verifier", None)


def cli_env(world: FlowWorld) -> dict[str, str]:
    """The environment that makes the `likeness` CLI use the test's database, storage and model."""
    settings = world.rt.settings
    return {
        **services_env(settings),
        "LIKENESS_MCNET_CHECKPOINT": str(settings.mcnet_checkpoint),
        "LIKENESS_POLICY_PATH": str(settings.policy_path),
        "LIKENESS_ALLOWED_INPUT_DIRS": json.dumps([str(p) for p in settings.allowed_input_dirs]),
        "LIKENESS_FIDELITY_EVERY": str(settings.fidelity_every),
        "COLUMNS": "250",
    }


def make_world(
    db_url: str, s3: S3ServerHandle, checkpoint: TinyCheckpoint, media: Media, root: Path
) -> FlowWorld:
    (root / "inputs").mkdir(parents=True, exist_ok=True)
    settings = s3.settings(
        root / "var",
        db_url,
        mcnet_checkpoint=checkpoint.path,
        mcnet_checkpoint_sha256=checkpoint.sha256,
        allowed_input_dirs=[root / "inputs", media.portrait.parent],
        policy_path=write_policy(root / "policy.yaml", loose=True),
        inference_batch_size=8,
        fidelity_every=4,
    )
    world = FlowWorld(rt=Runtime(settings), root=root, media=media)
    with unit_of_work(world.sessions) as session:
        for email, roles in (
            (COMPLIANCE, ["compliance"]),
            (OPERATOR, ["operator"]),
            (REVIEWER, ["reviewer"]),
            (REVIEWER_OPERATOR, ["reviewer", "operator"]),
        ):
            users.add_user(session, email=email, roles=roles, actor="system:test")
    with unit_of_work(world.sessions) as session:  # only a registered model renders
        models_registry.register_model(
            session,
            name=TINY_MODEL_NAME,
            version="1",
            sha256=checkpoint.sha256,
            config=checkpoint.config.to_dict(),
            actor_email=OPERATOR,
        )
    return world


@pytest.fixture
def flow_world(
    sqlite_db_url: str,
    s3_server: S3ServerHandle,
    tiny_checkpoint: TinyCheckpoint,
    flow_media: Media,
    tmp_path: Path,
    prefect_api: str,
) -> Iterator[FlowWorld]:
    """A world on SQLite, installed as the process's runtime for the flows."""
    world = make_world(sqlite_db_url, s3_server, tiny_checkpoint, flow_media, tmp_path)
    with use_runtime(world.rt):
        yield world
    world.rt.close()


@pytest.fixture
def flow_world_any_db(
    db_url: str,
    s3_server: S3ServerHandle,
    tiny_checkpoint: TinyCheckpoint,
    flow_media: Media,
    tmp_path: Path,
    prefect_api: str,
) -> Iterator[FlowWorld]:
    """The same world, once on SQLite and once on PostgreSQL."""
    world = make_world(db_url, s3_server, tiny_checkpoint, flow_media, tmp_path)
    with use_runtime(world.rt):
        yield world
    world.rt.close()
