"""Delivery as plain functions: pipeline stages (label, watermark, C2PA, upload) composed with governance.

No Prefect here, so the CLI, the web console and the flows' tasks all call the same code.
`mark_and_publish` labels, watermarks, signs (last) and uploads a job's approved render, then records
the publication in one unit of work; if that write fails the uploaded object is removed again.
Reading a file back is `flows.publish.verify`; taking publications down is `flows.takedown.steps`.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.jobs.data import fetch, load_job_spec
from flows.runtime.root import make_store
from governance import consent as consents
from governance import jobs, models_registry
from governance import publications as pubs
from governance.enums import JobState
from governance.errors import ConsentError, InvalidTransition
from governance.schema import Consent
from governance.types import new_id
from governance.uow import unit_of_work
from pipeline.errors import PipelineError
from pipeline.marks import label as labels
from pipeline.marks import provenance, watermark
from pipeline.storage.local_s3 import LocalS3Server
from pipeline.storage.objects import BucketInfo, object_key

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from flows.runtime.root import Runtime
    from flows.runtime.settings import Settings

logger = logging.getLogger(__name__)

PUBLISHED_NAME = "video.mp4"
SIGNING_DIR = "signing"
S3_DIR = "s3"
LOCAL_HOSTS = ("127.0.0.1", "localhost")
# What the CLI reports in one line (the console reaches pipeline errors only through flows).
PUBLISHING_ERRORS: tuple[type[Exception], ...] = (PipelineError, ValueError)


class WatermarkNotReadable(watermark.WatermarkError):
    """The freshly marked video did not read back with its own payload: nothing is published."""


@dataclass(frozen=True)
class PublishResult:
    """Where a publication lies and what identifies it."""

    publication_id: str
    job_id: str
    bucket: str
    object_key: str
    version_id: str | None
    sha256: str
    watermark_payload: int
    already_published: bool = False


# -- signing identity -----------------------------------------------------------------------------------


def signing_identity(settings: Settings) -> provenance.SigningIdentity:
    """The configured certificate and key, or the local development CA under `var_dir` (made on first use)."""
    if settings.signing_cert_path is not None or settings.signing_key_path is not None:
        if settings.signing_cert_path is None or settings.signing_key_path is None:
            raise provenance.SigningCertificateError(
                "set both LIKENESS_SIGNING_CERT_PATH and LIKENESS_SIGNING_KEY_PATH, or neither"
            )
        return provenance.load_identity(settings.signing_cert_path, settings.signing_key_path)
    return provenance.ensure_dev_identity(settings.var_dir / SIGNING_DIR)


def trust_anchors(settings: Settings) -> bytes | None:
    """PEM trust anchors for reading manifests: the configured file, else the local development CA."""
    path = settings.trust_anchor_path or settings.var_dir / SIGNING_DIR / provenance.CA_FILE
    try:
        return Path(path).read_bytes()
    except OSError:
        if settings.trust_anchor_path is not None:
            raise provenance.SigningCertificateError(f"cannot read trust anchors {path}") from None
        return None


# -- the local S3 server -----------------------------------------------------------------------------------


def local_s3_server(settings: Settings) -> LocalS3Server:
    """The project's own SeaweedFS for this `var_dir`, serving the configured (loopback) endpoint."""
    host, _, port = settings.s3_endpoint.rpartition(":")
    if host not in LOCAL_HOSTS or not port.isdigit():
        raise ValueError(
            f"LIKENESS_S3_ENDPOINT {settings.s3_endpoint!r} is not a 127.0.0.1:PORT endpoint; "
            "the local server only serves loopback (production S3 needs no `storage up`)"
        )
    return LocalS3Server(
        settings.var_dir / S3_DIR,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        s3_port=int(port),
    )


def ensure_buckets(settings: Settings) -> dict[str, BucketInfo]:
    """Create the project's buckets on the configured endpoint; returns what each one has."""
    return make_store(settings).ensure_buckets()


# -- publish ----------------------------------------------------------------------------------------------


def _model_name(settings: Settings) -> str:
    return settings.mcnet_checkpoint.name if settings.mcnet_checkpoint is not None else "MCNet"


def _check_consent(sessions: sessionmaker[Session], job_id: str, actor: str) -> Consent:
    """The consent in force for the job's use, right before delivery; a refusal is recorded on the job."""
    refusal: ConsentError | None = None
    with unit_of_work(sessions) as session:
        job = jobs.get_job(session, job_id)
        try:
            found = consents.verify(
                session,
                subject_id=job.subject_id,
                purpose=job.purpose,
                channel=job.channel,
                territory=job.territory,
            )
        except ConsentError as exc:
            refusal = exc
            if jobs.can_transition(JobState(job.state), JobState.refused):
                jobs.refuse(session, job, actor=actor, reason=str(exc), details={"stage": "publish"})
    if refusal is not None:
        raise refusal
    return found


def mark_and_publish(
    rt: Runtime, *, job_id: str, actor: str, label: labels.LabelSpec | None = None
) -> PublishResult:
    """Label, watermark, sign and upload a job's approved render; record the publication.

    The job must be `publishing` (claimed by the caller). Idempotent: a job already published returns
    its publication. Consent is verified once more right before anything is marked.

    Raises:
        ConsentError: the consent no longer covers the use (the job is moved to `refused`).
        InvalidTransition: the job is not in `publishing`.
        WatermarkNotReadable: the marked video did not read back (nothing uploaded).
        StorageUnavailable and the other storage errors: see `pipeline.storage.objects`.
    """
    settings = rt.settings
    with unit_of_work(rt.sessions) as session:
        existing = pubs.find_by_job(session, job_id)
        if existing is not None:
            return _result(existing, already=True)
        job = jobs.get_job(session, job_id)
        if JobState(job.state) != JobState.publishing:
            raise InvalidTransition(
                f"job {job_id} is {JobState(job.state).value}: claim it for publishing first"
            )
        spec = load_job_spec(session, job_id)
        payload = pubs.allocate_payload(session, job_id)
        hashes = pubs.input_hashes(session, job)
        render_ref = (job.output_bucket, job.output_key, job.output_sha256)
        model_sha256 = job.model_sha256 or ""
        registered = models_registry.manifest_entry(session, model_sha256)
    if None in render_ref:
        raise InvalidTransition(f"job {job_id} has no rendered output to publish")
    found = _check_consent(rt.sessions, job_id, actor)
    identity = signing_identity(settings)
    store = rt.store
    publication_id = new_id()
    work = rt.workspace_root / f"publish-{job_id}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        from flows.jobs.data import StoredRef

        render = fetch(store, StoredRef(*render_ref), work / "render.mp4")  # type: ignore[arg-type]
        portrait = fetch(store, spec.portrait, work / f"portrait{Path(spec.portrait.key).suffix or '.png'}")
        driving = fetch(store, spec.driving, work / f"driving{Path(spec.driving.key).suffix or '.mp4'}")
        spec_label = label or labels.LabelSpec()
        labelled = labels.burn_label(render, work / "labelled.mp4", spec=spec_label)
        marked = watermark.embed(labelled, work / "marked.mp4", payload)
        reading = watermark.read(marked, max_frames=32)  # a fresh crf-20 mark: a sample suffices
        if reading.payload != payload:
            raise WatermarkNotReadable(
                f"job {job_id}: the marked video reads {reading.payload}, not {payload}"
            )
        claims = provenance.ProvenanceClaims(
            title=PUBLISHED_NAME,
            job_id=job_id,
            publication_id=publication_id,
            consent_id=found.id,
            consent_version=found.version,
            model_sha256=model_sha256,
            model_name=registered["name"] if registered else _model_name(settings),
            model_version=registered["version"] if registered else "",
            watermark_payload=payload,
            watermark_method=watermark.METHOD,
            label_text=spec_label.text,
            ingredients=(
                provenance.Ingredient(portrait, hashes.get("portrait", spec.portrait.sha256), "portrait"),
                provenance.Ingredient(
                    driving, hashes.get("driving video", spec.driving.sha256), "driving video"
                ),
            ),
        )
        signed = provenance.sign_video(marked, work / PUBLISHED_NAME, identity=identity, claims=claims)
        check = provenance.read_manifest(signed, trust_anchors=identity.ca_pem)
        if check.state not in ("Trusted", "Valid"):
            raise provenance.ProvenanceError(
                f"job {job_id}: the signed video reads {check.state}, not publishing"
            )
        key = object_key(job_id, PUBLISHED_NAME)
        stored = store.put_file(
            "published",
            key,
            signed,
            content_type="video/mp4",
            metadata={
                "job-id": job_id,
                "publication-id": publication_id,
                "consent-id": found.id,
                "consent-version": str(found.version),
                "model-sha256": model_sha256,
                "watermark-payload": str(payload),
            },
        )
        manifest = {
            "state": check.state,
            "signer": identity.subject,
            "actions": list(check.actions),
            "generation": check.generation,
            "soft_binding": check.soft_binding,
        }
        try:
            with unit_of_work(rt.sessions) as session:
                publication = pubs.record_publication(
                    session,
                    job_id=job_id,
                    stored=stored,
                    watermark_payload=payload,
                    published_by=actor,
                    c2pa_manifest=manifest,
                    c2pa_manifest_label=check.label,
                    publication_id=publication_id,
                )
                result = _result(publication, already=False)
        except Exception:
            # Compensation: nothing is published that the database does not know about.
            logger.warning(
                "recording publication of job %s failed; removing %s/%s", job_id, stored.bucket, key
            )
            store.delete("published", key)
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("published job %s as %s (payload %d)", job_id, result.object_key, payload)
    return result


def _result(publication: Any, *, already: bool) -> PublishResult:
    return PublishResult(
        publication.id,
        publication.job_id,
        publication.bucket,
        publication.object_key,
        publication.version_id,
        publication.sha256,
        publication.watermark_payload,
        already,
    )
