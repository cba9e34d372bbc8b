"""A console on a real, migrated SQLite database: users of every role (argon2 passwords), a subject,
a consent, a job awaiting review; a controllable clock; signed-in TestClients; optionally the real S3."""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from console.web import WebConfig, create_app
from flows.runtime.root import Runtime
from flows.runtime.settings import Settings
from governance import batches, consent, jobs, subjects, users
from governance.enums import AssetKind, JobState
from governance.policy import CheckScores, load_policy
from governance.uow import unit_of_work
from pipeline.storage.objects import StoredObject
from tests.governance.helpers import FRAME_SCORES, record_published

PASSWORD = "correct horse battery staple"
MEDIA = Path(__file__).resolve().parents[2] / ".." / "shared" / "media"
# name -> roles; `opreview` may both request and review (never the same batch: four eyes).
PEOPLE = {
    "compliance": ["compliance"],
    "operator": ["operator"],
    "reviewer": ["reviewer"],
    "auditor": ["auditor"],
    "admin": ["admin"],
    "opreview": ["operator", "reviewer"],
}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Clock:
    """A clock the test moves by hand (sessions and throttling read it)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def csrf_from(html: str) -> str:
    """The CSRF token in a page's forms."""
    found = CSRF.search(html)
    assert found, "page has no CSRF token"
    return found.group(1)


@dataclass
class WebWorld:
    """The app, its runtime and what the fixture recorded."""

    app: FastAPI
    runtime: Runtime
    clock: Clock
    users: dict[str, str]  # name -> user id
    subject_id: str
    evidence: Path
    tmp: Path
    clients: list[TestClient] = field(default_factory=list)

    @property
    def sf(self) -> sessionmaker[Session]:
        return self.runtime.sessions

    def email(self, name: str) -> str:
        return f"{name}@example.org"

    def close(self) -> None:
        """Close every client the test opened, then the runtime (its database engine and store)."""
        for client in self.clients:
            client.close()
        self.runtime.close()

    def client(self, name: str | None = None) -> TestClient:
        """A browser-like client over HTTPS (the cookies are Secure), signed in as `name` if given."""
        client = TestClient(self.app, base_url="https://testserver", follow_redirects=False)
        self.clients.append(client)
        if name is not None:
            response = self.sign_in(client, self.email(name), PASSWORD)
            assert response.status_code == 303, response.text
        return client

    def sign_in(self, client: TestClient, email: str, password: str) -> Any:
        token = csrf_from(client.get("/sign-in").text)
        return client.post("/sign-in", data={"email": email, "password": password, "csrf_token": token})

    def post(
        self,
        client: TestClient,
        page: str,
        action: str,
        data: dict[str, Any] | None = None,
        files: Any = None,
    ) -> Any:
        """Submit a form the way a browser does: read the CSRF token off `page`, then post to `action`."""
        token = csrf_from(client.get(page).text)
        return client.post(action, data={**(data or {}), "csrf_token": token}, files=files)

    def grant(self, **overrides: Any) -> str:
        now = datetime.now(UTC)
        args: dict[str, Any] = {
            "subject_id": self.subject_id,
            "purposes": ["advertising"],
            "channels": ["web"],
            "territories": ["DE"],
            "valid_from": now - timedelta(days=1),
            "valid_until": now + timedelta(days=365),
            "evidence_path": self.evidence,
            "evidence_sha256": hashlib.sha256(self.evidence.read_bytes()).hexdigest(),
            "evidence_key": "evidence/test.pdf",
            "recorded_by": self.users["compliance"],
        }
        args.update(overrides)
        with unit_of_work(self.sf) as db:
            return consent.grant(db, **args).id

    def asset(
        self,
        kind: AssetKind,
        *,
        bucket: str = "inputs",
        key: str | None = None,
        sha256: str | None = None,
        media_type: str = "",
    ) -> str:
        with unit_of_work(self.sf) as db:
            return batches.register_asset(
                db,
                kind=kind,
                bucket=bucket,
                object_key=key or f"{kind.value}/{hashlib.sha1(kind.value.encode()).hexdigest()}",
                sha256=sha256 or hashlib.sha256(kind.value.encode()).hexdigest(),
                size_bytes=10,
                actor="operator@example.org",
                media_type=media_type,
                subject_id=self.subject_id,
            ).id

    def publish_file(self, job_id: str, video: Path, *, payload: int) -> tuple[StoredObject, str]:
        """Store `video` as the job's published copy and record it (approved, publishing, published):
        the stored object and the publication's id."""
        stored = self.runtime.store.put_file("published", f"jobs/{job_id}/final.mp4", video)
        with unit_of_work(self.sf) as db:
            job = jobs.get_job(db, job_id)
            jobs.transition(db, job, to=JobState.approved, actor="system:test")
            jobs.transition(db, job, to=JobState.publishing, actor="system:test")
        return stored, record_published(self.sf, job_id, stored, payload=payload, by="system:test")

    def job_awaiting_review(
        self,
        *,
        requested_by: str = "operator",
        portrait: str | None = None,
        driving: str | None = None,
        output: tuple[str, str, str] | None = None,
        identity: dict[str, Any] | None = None,
        scores: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> str:
        """A job rendered and flagged by the default policy (colour drift in its review band)."""
        spec = batches.NewJob(
            subject_id=self.subject_id,
            portrait_asset_id=portrait or self.asset(AssetKind.portrait),
            driving_asset_id=driving or self.asset(AssetKind.driving_video),
            purpose="advertising",
            channel="web",
            territory="DE",
        )
        consent_id = self.grant()
        bucket, key, sha = output or ("quarantine", "out/render.mp4", "a" * 64)
        with unit_of_work(self.sf) as db:
            batch = batches.create_batch(
                db, name="web batch", requested_by=self.users[requested_by], jobs=[spec]
            )
            job = batches.jobs_of_batch(db, batch.id)[0]
            jobs.claim(
                db,
                job,
                to=JobState.rendering,
                flow_run_id="run-1",
                actor="system:test",
                consent_id=consent_id,
            )
            jobs.record_render(
                db,
                job,
                actor="system:test",
                output_bucket=bucket,
                output_key=key,
                output_sha256=sha,
                seed=7,
                model_sha256="b" * 64,
                inference_mode="exact",
            )
            checked = CheckScores.model_validate({**FRAME_SCORES, "colour_drift": 7.0, **(scores or {})})
            details = {
                "identity": identity
                or {
                    "distances": [0.03, 0.04, None, 0.09, 0.05],
                    "every": 3,
                    "missing_frames": [6],
                    "threshold": 0.07,
                },
                **(details or {}),
            }
            jobs.record_checks(
                db,
                job,
                actor="system:test",
                scores=checked,
                decision=load_policy().evaluate(checked),
                details=details,
            )
            assert job.state == JobState.awaiting_review
            return job.id


def build_world(
    tmp_path: Path, db_url: str, *, config: Callable[[Clock], WebConfig] | None = None, s3: Any = None
) -> WebWorld:
    """Users, a subject and evidence on a migrated database; the console app on top."""
    var = tmp_path / "var"
    uploads = var / "console" / "uploads"
    extra: dict[str, Any] = {"s3_endpoint": "127.0.0.1:1"}  # nothing listens there: storage is 'down'
    if s3 is not None:
        from tests.fixtures.storage import unique_prefix

        extra = {
            "s3_endpoint": s3.endpoint,
            "s3_access_key": s3.access_key,
            "s3_secret_key": s3.secret_key,
            "s3_bucket_prefix": unique_prefix(),
        }
    settings = Settings(database_url=db_url, var_dir=var, allowed_input_dirs=[uploads], **extra)
    runtime = Runtime(settings)
    clock = Clock()
    web_config = config(clock) if config else WebConfig(clock=clock)
    evidence = tmp_path / "consent.pdf"
    evidence.write_bytes(b"%PDF-1.4 signed release of subject S-1\n")
    with unit_of_work(runtime.sessions) as db:
        made = {
            name: users.add_user(
                db,
                email=f"{name}@example.org",
                roles=roles,
                actor="system:test",
                password=PASSWORD,
                display_name=name.title(),
            ).id
            for name, roles in PEOPLE.items()
        }
        subject = subjects.add_subject(
            db, reference="S-1", display_name="Ada Example", created_by=made["compliance"]
        )
        subject_id = subject.id
    app = create_app(runtime, web_config)
    return WebWorld(
        app=app,
        runtime=runtime,
        clock=clock,
        users=made,
        subject_id=subject_id,
        evidence=evidence,
        tmp=tmp_path,
    )


@pytest.fixture(autouse=True)
def _quick_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id, lighter parameters: these tests sign in dozens of times (speed, not security, here)."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))


@pytest.fixture
def web(sqlite_db_url: str, tmp_path: Path) -> Any:
    """A console on SQLite with no object store reachable (pages that need storage are not used)."""
    world = build_world(tmp_path, sqlite_db_url)
    yield world
    world.close()


@pytest.fixture
def web_any_db(db_url: str, tmp_path: Path) -> Any:
    """The same console on SQLite and on PostgreSQL (for the decisions whose races the database settles)."""
    world = build_world(tmp_path, db_url)
    yield world
    world.close()


@pytest.fixture
def web_s3(sqlite_db_url: str, tmp_path: Path, s3_server: Any) -> Any:
    """A console on SQLite and the real SeaweedFS S3 server (buckets unique to the test)."""
    world = build_world(
        tmp_path,
        sqlite_db_url,
        s3=s3_server,
        config=lambda clock: WebConfig(
            clock=clock, max_upload_bytes=8 * 1024 * 1024, publish_on_approval=False
        ),
    )
    yield world
    world.close()


@pytest.fixture(scope="session")
def sample_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shared sample portrait and driving clip, and a 2-second H.264 'render' cut from the clip."""
    portrait = MEDIA / "portrait_astronaut.png"
    driving = MEDIA / "talking_man_320x240_15s.mov"
    if not portrait.is_file() or not driving.is_file():
        pytest.skip(f"sample media missing under {MEDIA.resolve()}")
    folder = tmp_path_factory.mktemp("web-media")
    render = folder / "render.mp4"
    short = folder / "driving.mp4"
    for out, size in ((render, "256:256"), (short, "320:240")):
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-i",
                str(driving),
                "-t",
                "2",
                "-vf",
                f"scale={size}",
                "-an",
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-movflags",
                "+faststart",
                str(out),
            ],
            check=True,
            timeout=60,
        )
    return {"portrait": portrait, "driving": short, "render": render}


def store_job_media(world: WebWorld, media: dict[str, Path]) -> dict[str, Any]:
    """Put portrait, driving video and render in the real store; register them; return the pieces for a job."""
    store = world.runtime.store
    refs = {}
    for name, path in media.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        bucket = "quarantine" if name == "render" else "inputs"
        stored = store.put_file(bucket, f"web-test/{digest}{path.suffix}", path)
        refs[name] = (stored.bucket, stored.key, digest)
    portrait = world.asset(
        AssetKind.portrait,
        bucket=refs["portrait"][0],
        key=refs["portrait"][1],
        sha256=refs["portrait"][2],
        media_type="image/png",
    )
    driving = world.asset(
        AssetKind.driving_video,
        bucket=refs["driving"][0],
        key=refs["driving"][1],
        sha256=refs["driving"][2],
        media_type="video/mp4",
    )
    return {"portrait": portrait, "driving": driving, "output": refs["render"]}


ERROR_LINE = re.compile(r'<p class="error" role="alert">(.*?)</p>', re.S)


def error_of(response: Any) -> str:
    """The one-line error a refusal page shows, unescaped (what the person reads)."""
    import html

    found = ERROR_LINE.search(response.text)
    assert found, f"no error line in a {response.status_code} page"
    return html.unescape(found.group(1)).strip()
