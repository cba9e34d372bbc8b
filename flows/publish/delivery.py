"""Publishing, verification and takedown as plain functions: pipeline stages composed with governance.

No Prefect here, so the CLI, the web console and the flows' tasks all call the same code.
`mark_and_publish` labels, watermarks, signs (last) and uploads a job's approved render, then records
the publication in one unit of work; if that write fails the uploaded object is removed again.
`verify_file` tells what a file is (C2PA verdict, watermark, and from it the job, consent, model,
reviewer and publication), also for a re-encoded copy whose manifest is gone. The takedowns remove
the objects as the storage allows and record who, when and why.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.jobs.data import fetch, load_job_spec
from governance import consent as consents
from governance import jobs, models_registry
from governance import publications as pubs
from governance.enums import JobState
from governance.errors import ConsentError, InvalidTransition, ValidationFailed
from governance.publications import PublicationRecord
from governance.schema import Consent, Publication
from governance.types import new_id
from governance.uow import unit_of_work
from governance.users import require_role
from governance.withdrawals import due_reason
from pipeline.errors import PipelineError
from pipeline.marks import label as labels
from pipeline.marks import provenance, watermark
from pipeline.storage.local_s3 import LocalS3Server
from pipeline.storage.objects import BucketInfo, ObjectStore, TakedownResult, object_key, sha256_file

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


@dataclass(frozen=True)
class VerifyReport:
    """What `likeness verify` says about a file."""

    path: str
    sha256: str
    c2pa_state: str
    c2pa_failures: tuple[str, ...]
    manifest_publication_id: str | None
    watermark_payload: int | None
    watermark_frames: int
    publication: PublicationRecord | None
    exact_copy: bool
    verdict: str  # published | withdrawal_pending | taken_down | unknown_watermark | not_published
    withdrawal: str | None = None  # why it is withdrawn (its consent revoked or no longer covering it)
    model: dict[str, str] | None = None  # the registered model the publication was rendered with

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.publication is not None:
            data["publication"] = {
                k: (v.isoformat() if hasattr(v, "isoformat") else v)
                for k, v in asdict(self.publication).items()
            }
        return data


@dataclass(frozen=True)
class TakedownReport:
    """One publication taken down: what the storage did and who recorded it."""

    publication_id: str
    job_id: str
    storage: TakedownResult
    taken_down_by: str
    reason: str


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


def make_store(settings: Settings) -> ObjectStore:
    """An ObjectStore from settings (buckets not ensured)."""
    return ObjectStore(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=settings.s3_secure,
        bucket_prefix=settings.s3_bucket_prefix,
        max_object_bytes=settings.max_object_bytes,
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
                    bucket=stored.bucket,
                    object_key=stored.key,
                    version_id=stored.version_id,
                    sha256=stored.sha256,
                    size_bytes=stored.size,
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


# -- verify ----------------------------------------------------------------------------------------------


def verify_file(path: Path, *, sessions: sessionmaker[Session], trust: bytes | None) -> VerifyReport:
    """What a file is: its C2PA verdict, its watermark, and the publication they lead to.

    The watermark is the primary link (it survives re-encoding); a valid manifest's publication id and
    the exact sha256 are also used. A file with neither is reported as not published by us.
    """
    path = Path(path)
    report = provenance.read_manifest(path, trust_anchors=trust)
    reading = watermark.read(path)
    digest = sha256_file(path)
    manifest_pub = report.generation.get("publication_id") if report.state in ("Trusted", "Valid") else None
    record: PublicationRecord | None = None
    model: dict[str, str] | None = None
    with unit_of_work(sessions) as session:
        found = None
        if reading.payload is not None:
            found = pubs.find_by_watermark(session, reading.payload)
        if found is None and manifest_pub:
            found = session.get(Publication, manifest_pub)
        if found is None:
            found = pubs.find_by_sha256(session, digest)
        withdrawal = None
        if found is not None:
            record = pubs.describe(session, found)
            job = jobs.get_job(session, found.job_id)
            withdrawal = (
                found.takedown_reason if found.taken_down_at is not None else due_reason(session, job)
            )
            model = models_registry.manifest_entry(session, record.model_sha256 or "")
    if record is not None:
        verdict = "published" if record.active else "taken_down"
        if record.active and withdrawal is not None:
            verdict = "withdrawal_pending"  # due for takedown: the storage has not confirmed it yet
    elif reading.payload is not None:
        verdict = "unknown_watermark"
    else:
        verdict = "not_published"
    return VerifyReport(
        path=str(path),
        sha256=digest,
        c2pa_state=report.state,
        c2pa_failures=report.failures,
        manifest_publication_id=manifest_pub,
        watermark_payload=reading.payload,
        watermark_frames=reading.frames_read,
        publication=record,
        exact_copy=record is not None and record.sha256 == digest,
        verdict=verdict,
        withdrawal=withdrawal,
        model=model,
    )


# -- takedown --------------------------------------------------------------------------------------------


def takedown_publication(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    *,
    publication_id: str,
    reason: str,
    actor_email: str | None = None,
    actor: str | None = None,
    retain: bool = False,
) -> TakedownReport:
    """Remove a publication's object(s) and record who, when and why.

    The storage goes first (slow I/O outside any transaction) and is idempotent, so a failed record
    can simply be retried. With `retain`, versions are kept under legal hold behind a delete marker.
    """
    if not reason or not reason.strip():
        raise ValidationFailed(f"taking down publication {publication_id} needs a reason")
    with unit_of_work(sessions) as session:
        publication = pubs.get_publication(session, publication_id)
        if publication.taken_down_at is not None:
            raise InvalidTransition(f"publication {publication_id} was already taken down")
        if actor_email is not None:  # refuse before touching storage
            require_role(session, email=actor_email, roles=pubs.TAKEDOWN_ROLES, action="publication.takedown")
        bucket, key, job_id = publication.bucket, publication.object_key, publication.job_id
    result = store.takedown(bucket, key, retain=retain)
    storage = {
        "bucket": result.bucket,
        "key": result.key,
        "deleted_versions": list(result.deleted_versions),
        "held_versions": list(result.held_versions),
        "delete_marker": result.delete_marker,
    }
    with unit_of_work(sessions) as session:
        publication = pubs.takedown(
            session,
            publication_id=publication_id,
            actor_email=actor_email,
            actor=actor,
            reason=reason,
            storage=storage,
        )
        who = str(publication.taken_down_by)
    return TakedownReport(publication_id, job_id, result, who, reason.strip())


def takedown_for_consent(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    *,
    consent_id: str,
    reason: str,
    actor_email: str | None = None,
    actor: str | None = None,
) -> list[TakedownReport]:
    """Take down every active publication made under any version of a consent (e.g. after revocation)."""
    with unit_of_work(sessions) as session:
        ids = [p.id for p in pubs.publications_for_consent(session, consent_id)]
    return [
        takedown_publication(
            sessions, store, publication_id=pid, reason=reason, actor_email=actor_email, actor=actor
        )
        for pid in ids
    ]
