"""`likeness demo run`: the whole product, end to end, on one machine, from the project's own licensed clip.

Starts the local S3 server, migrates a fresh SQLite database under `var/demo`, creates a compliance
officer, an operator and a reviewer, registers the demo subject (the person in the BSD-3 licensed
talking-man clip) with a consent and a reference photo, submits a batch with one job the consent covers
and one it does not (refused, audited), runs the batch flow, takes the review decision through the same
code path as `likeness review approve`, publishes, verifies the published file and the audit chain.
The model is the demo checkpoint in `flows/demo/assets` (trained on this one person) unless
`LIKENESS_MCNET_CHECKPOINT` names another. Each step reports through `on_step`, so the CLI can print it.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import yaml
from PIL import Image

from flows.batch.batchfile import read_batch_file
from flows.batch.status import BatchReport, batch_report
from flows.batch.submission import submit_batch
from flows.runtime.orchestrator import api_for, local_prefect_server, sigterm_as_exit
from flows.runtime.root import Runtime, use_runtime
from flows.runtime.settings import Settings
from governance import consent, subjects, users
from governance.audit import record as audit
from governance.migrate import upgrade
from governance.policy import DEFAULT_POLICY_PATH
from governance.types import utcnow
from governance.uow import unit_of_work
from governance.vocabulary import TRAINING_PURPOSE
from models.digest import sha256_file

logger = logging.getLogger(__name__)

DEMO_ASSETS = Path(__file__).resolve().parent / "assets"
DEMO_CLIP = DEMO_ASSETS / "talking_man_192.mp4"
CHECKPOINT_GLOBS = ("*.pth.tar", "*.pth", "*.safetensors")
COMPLIANCE, OPERATOR, REVIEWER = (
    "compliance@demo.likeness",
    "operator@demo.likeness",
    "reviewer@demo.likeness",
)
ADMIN = "admin@demo.likeness"  # the one demo account with a password: it signs in to the console
SUBJECT_REFERENCE = "DEMO-TALKING-MAN"
# Frames of the 25 fps, 375-frame clip: one for the reference photo, one for the portrait, a stretch to drive.
REFERENCE_FRAME, PORTRAIT_FRAME = 0, 40
DRIVING_FRAMES = range(300, 375)  # the held-out last three seconds: the speaker never trained on them
COVERED_USE = {"purpose": "advertising", "channel": "web", "territory": "DE"}
UNCOVERED_USE = {"purpose": "advertising", "channel": "broadcast", "territory": "US"}

StepReporter = Callable[[str], None]


class DemoError(RuntimeError):
    """The demo cannot run on this machine (no checkpoint, no clip); the message says what to do."""


@dataclass
class DemoResult:
    """What the demo did and where its results are."""

    var_dir: Path
    checkpoint: Path
    demo_model: bool
    s3_endpoint: str
    batch: BatchReport | None = None
    review: str | None = None
    published_copy: Path | None = None
    verify_verdict: str | None = None
    verify_details: dict[str, object] = field(default_factory=dict)
    audit_ok: bool | None = None
    audit_message: str | None = None
    admin_email: str | None = None
    admin_password: str | None = None  # printed once by the CLI, stored nowhere but as its argon2 hash


def demo_checkpoint() -> Path:
    """The demo model shipped in `flows/demo/assets`."""
    for pattern in CHECKPOINT_GLOBS:
        found = sorted(p for p in DEMO_ASSETS.glob(pattern) if not p.name.endswith(".config.json"))
        if found:
            return found[0]
    raise DemoError(f"no demo checkpoint in {DEMO_ASSETS}: set LIKENESS_MCNET_CHECKPOINT=/path/to/checkpoint")


def demo_settings(base: Settings, root: Path) -> Settings:
    """The demo's own state under `root`: database, S3 data, workspace, a policy that asks for review."""
    checkpoint = base.mcnet_checkpoint or demo_checkpoint()
    return base.model_copy(
        update={
            "var_dir": root,
            "database_url": f"sqlite:///{root / 'likeness.db'}",
            "mcnet_checkpoint": checkpoint,
            "mcnet_checkpoint_sha256": base.mcnet_checkpoint_sha256 if base.mcnet_checkpoint else None,
            "allowed_input_dirs": [root / "inputs"],
            "policy_path": root / "policy.yaml",
            "s3_bucket_prefix": "likeness-demo",
            "prefect_port": 0
            if base.prefect_port == Settings().prefect_port
            else base.prefect_port,  # any free port
        }
    )


def write_demo_policy(path: Path) -> None:
    """The default policy, with every non-rejected job sent to a person, so the demo shows the review step."""
    rules = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    rules.update(
        name="demo",
        always_review=True,
        description="The default rules, but every job goes to a reviewer (to show the gate), and motion "
        "failures are flagged for the reviewer instead of rejecting.",
    )
    # The one-person demo model does not follow the driver's mouth (docs/motion-checks.md): under the
    # default policy its render is rejected. The demo shows those flags at the review step instead.
    for bounds in (rules.get("motion") or {}).values():
        bounds.update({"reject_above": 1.0e6} if "reject_above" in bounds else {"reject_below": -2.0})
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")


def extract_inputs(clip: Path, folder: Path, *, driving: range = DRIVING_FRAMES) -> dict[str, Path]:
    """Cut the licensed clip into a reference photo, a portrait and a driving video (frames `driving`)."""
    from pipeline.video.reader import VideoWriter, iter_frames, probe

    folder.mkdir(parents=True, exist_ok=True)
    info = probe(clip)
    paths = {
        "reference": folder / "reference.png",
        "portrait": folder / "portrait.png",
        "driving": folder / "driving.mp4",
    }
    with VideoWriter(paths["driving"], fps=info.fps, size=(info.width, info.height)) as writer:
        for index, frame in enumerate(iter_frames(clip)):
            if index == REFERENCE_FRAME:
                Image.fromarray(frame).save(paths["reference"])
            if index == PORTRAIT_FRAME:
                Image.fromarray(frame).save(paths["portrait"])
            if index in driving:
                writer.write(frame)
    return paths


def seed_people(rt: Runtime, inputs: dict[str, Path], evidence: Path) -> str:
    """Users, the demo subject, its reference photo and its consent; returns the subject id."""
    store = rt.store
    reference_key = f"references/{sha256_file(inputs['reference'])}.png"
    reference = store.put_file("inputs", reference_key, inputs["reference"], metadata={"kind": "reference"})
    evidence_sha = sha256_file(evidence)
    # The console's key scheme and form (`s3://bucket/key`), so the console serves the demo's evidence too.
    stored_evidence = store.put_file(
        "inputs",
        f"evidence/{evidence_sha}/original.txt",
        evidence,
        metadata={"kind": "evidence"},
        expected_sha256=evidence_sha,
    )
    evidence_key = f"s3://{stored_evidence.bucket}/{stored_evidence.key}"
    with unit_of_work(rt.sessions) as session:
        made = {
            email: users.add_user(session, email=email, roles=[role], actor="system:demo")
            for email, role in ((COMPLIANCE, "compliance"), (OPERATOR, "operator"), (REVIEWER, "reviewer"))
        }
        officer = made[COMPLIANCE].id
        subject = subjects.add_subject(
            session,
            reference=SUBJECT_REFERENCE,
            display_name="Speaker of the BSD-3 talking-man clip",
            created_by=officer,
        )
        subjects.add_reference(
            session,
            subject_id=subject.id,
            bucket=reference.bucket,
            object_key=reference.key,
            sha256=reference.sha256,
            created_by=officer,
        )
        consent.grant(
            session,
            subject_id=subject.id,
            purposes=[COVERED_USE["purpose"], TRAINING_PURPOSE],
            channels=[COVERED_USE["channel"]],
            territories=[COVERED_USE["territory"]],
            valid_from=utcnow() - timedelta(minutes=5),
            valid_until=utcnow() + timedelta(days=365),
            evidence_path=evidence,
            evidence_sha256=evidence_sha,
            evidence_key=evidence_key,
            recorded_by=officer,
            notes="demo consent: advertising on the web in Germany only, and training the demo model",
        )
        return subject.id


def seed_admin(rt: Runtime) -> tuple[str, str]:
    """An admin account with a fresh random password, so the console can be opened on the demo's data
    (the admin resets the other demo users' passwords from the Users page). Returns (email, password)."""
    password = secrets.token_urlsafe(15)  # 20 characters
    with unit_of_work(rt.sessions) as session:
        users.add_user(
            session,
            email=ADMIN,
            roles=["admin"],
            actor="system:demo",
            display_name="Demo admin",
            password=password,
        )
    return ADMIN, password


def register_model(rt: Runtime, subject_id: str, *, demo_model: bool) -> None:
    """Register the checkpoint the demo renders with (only registered models render).

    The shipped demo model's lineage is the licensed clip it was trained on, under the demo consent
    (which covers model training); another checkpoint is registered without lineage (trained elsewhere).
    """
    from governance.models_registry import TrainingClip, register_model
    from models.loading import load_mcnet

    checkpoint = rt.checkpoint_path
    loaded = load_mcnet(checkpoint, expected_sha256=rt.settings.mcnet_checkpoint_sha256)
    clips: list[TrainingClip] = []
    if demo_model:
        stored = rt.store.put_file(
            "inputs", f"training/{sha256_file(DEMO_CLIP)}.mp4", DEMO_CLIP, metadata={"kind": "training-clip"}
        )
        clips.append(
            TrainingClip(
                sha256=stored.sha256,
                subject_id=subject_id,
                split="train",
                frames=375,
                bucket=stored.bucket,
                object_key=stored.key,
                size_bytes=stored.size,
                origin=f"{DEMO_CLIP.name} (frames 0-299 trained on, 300-374 held out)",
            )
        )
    with unit_of_work(rt.sessions) as session:
        register_model(
            session,
            name="mcnet-demo128" if demo_model else checkpoint.name.split(".")[0],
            version="1",
            sha256=loaded.sha256,
            config=loaded.config.to_dict(),
            actor_email=OPERATOR,
            clips=clips,
            description="demo model trained on one person" if demo_model else "",
        )


def write_batch_file(folder: Path, inputs: dict[str, Path]) -> Path:
    """A batch with one job the consent covers and one it does not."""
    jobs = [
        {
            "subject": SUBJECT_REFERENCE,
            "portrait": inputs["portrait"].name,
            "driving": inputs["driving"].name,
            **use,
        }
        for use in (COVERED_USE, UNCOVERED_USE)
    ]
    path = folder / "batch.yaml"
    path.write_text(yaml.safe_dump({"name": "demo-batch", "jobs": jobs}, sort_keys=False), encoding="utf-8")
    return path


def driving_stretch(frames: int | None) -> range:
    """The first `frames` of the held-out stretch (None: all of it, three seconds).

    Raises:
        DemoError: `frames` is not between 1 and the stretch's length.
    """
    if frames is None:
        return DRIVING_FRAMES
    if not 1 <= frames <= len(DRIVING_FRAMES):
        raise DemoError(f"--frames must be between 1 and {len(DRIVING_FRAMES)}, got {frames}")
    return DRIVING_FRAMES[:frames]


def run_demo(base: Settings, *, root: Path, on_step: StepReporter, frames: int | None = None) -> DemoResult:
    """Run the demo under `root` (wiped first); the local S3 server is stopped at the end.

    `frames` animates only the first frames of the driving stretch: a quicker look at the same path.
    """
    from pipeline.storage.local_s3 import LocalS3Server

    driving = driving_stretch(frames)
    if not DEMO_CLIP.is_file():
        raise DemoError(f"demo clip {DEMO_CLIP} is missing")
    s3_root = root / "s3"
    previous = LocalS3Server(
        s3_root, access_key=base.s3_access_key, secret_key=base.s3_secret_key.get_secret_value()
    )
    previous.stop(grace=30.0)
    local_prefect_server(demo_settings(base, root)).stop()  # one a killed earlier demo may have left
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    settings = demo_settings(base, root)
    server = LocalS3Server(
        s3_root, access_key=settings.s3_access_key, secret_key=settings.s3_secret_key.get_secret_value()
    )
    on_step("starting the local S3 server (SeaweedFS)")
    state = server.start(timeout=90.0)
    settings = settings.model_copy(update={"s3_endpoint": state.endpoint})
    result = DemoResult(
        var_dir=root,
        checkpoint=Path(str(settings.mcnet_checkpoint)),
        demo_model=base.mcnet_checkpoint is None,
        s3_endpoint=state.endpoint,
    )
    rt = Runtime(settings)
    try:
        with sigterm_as_exit(), api_for(settings) as api:
            on_step(
                f"using the Prefect API at {api.api_url}"
                + (" (the demo's own local server, stopped at the end)" if api.started else "")
            )
            _run(rt, result, on_step, driving)
    finally:
        rt.close()
        on_step("stopping the local S3 server (its data stays under var/demo/s3)")
        server.stop(grace=30.0)
    return result


def _run(rt: Runtime, result: DemoResult, on_step: StepReporter, driving: range) -> None:
    from flows.batch.flow import nightly_batch
    from flows.publish.delivery import trust_anchors
    from flows.publish.verify import verify_file
    from flows.review.queue import pending_reviews
    from flows.review.steps import apply_decision

    root = rt.settings.var_dir
    on_step(f"migrating the SQLite database {rt.settings.database_url}")
    upgrade(rt.settings.database_url)
    write_demo_policy(root / "policy.yaml")
    on_step("cutting the licensed clip into a reference photo, a portrait and a driving video")
    inputs = extract_inputs(DEMO_CLIP, root / "inputs", driving=driving)
    evidence = root / "inputs" / "consent-form.txt"
    evidence.write_text(
        "Demo consent form: the speaker of the BSD-3 talking-man clip agrees to advertising "
        "on the web in Germany for one year.\n",
        encoding="utf-8",
    )
    on_step("creating users, the demo subject, its reference photo and its consent (advertising/web/DE)")
    subject_id = seed_people(rt, inputs, evidence)
    result.admin_email, result.admin_password = seed_admin(rt)
    on_step(f"registering the model {rt.checkpoint_path.name} with its training-data lineage")
    register_model(rt, subject_id, demo_model=result.demo_model)
    on_step("submitting a batch: one job the consent covers, one it does not (broadcast in the US)")
    batch_id = submit_batch(
        rt, read_batch_file(write_batch_file(root / "inputs", inputs)), requested_by_email=OPERATOR
    )
    on_step(f"running the batch flow for batch {batch_id} (render, checks, policy)")
    with use_runtime(rt):
        nightly_batch(batch_id=batch_id)
    waiting = [item for item in pending_reviews(rt) if item.batch_id == batch_id]
    for item in waiting:
        on_step(
            f"review: {REVIEWER} approves job {item.job_id} "
            f"(flagged because: {'; '.join(item.reasons) or 'policy sends every job to review'})"
        )
        with use_runtime(rt):
            decision = apply_decision(
                rt=rt,
                job_id=item.job_id,
                reviewer_email=REVIEWER,
                verdict="approve",
                reason="demo: output looks like the consenting subject",
            )
            if decision.publishing is not None:
                on_step(f"publishing job {item.job_id} (queued: {decision.publishing.mode})")
                decision.publishing.wait()
        from flows.publish.queue import publish_status

        result.review = (
            f"{item.job_id}: approved by {REVIEWER}, publication {publish_status(rt, item.job_id).state}"
        )
    result.batch = batch_report(rt, batch_id)
    published = [job for job in result.batch.jobs if job.published_key]
    if published:
        job = published[0]
        copy = root / "published" / f"{job.job_id}.mp4"
        copy.parent.mkdir(parents=True, exist_ok=True)
        rt.store.get_file("published", str(job.published_key), copy)
        result.published_copy = copy
        on_step(f"verifying the published file {copy}")
        report = verify_file(copy, sessions=rt.sessions, trust=trust_anchors(rt.settings))
        result.verify_verdict = report.verdict
        result.verify_details = {
            "c2pa": report.c2pa_state,
            "watermark": report.watermark_payload,
            "exact_copy": report.exact_copy,
            "sha256": report.sha256,
        }
    on_step("verifying the audit chain")
    with unit_of_work(rt.sessions) as session:
        chain = audit.verify_chain(session)
    result.audit_ok, result.audit_message = chain.ok, chain.message
