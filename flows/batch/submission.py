"""Submitting a batch: check each input, store it once (content-addressed), register it, create the jobs.

Everything is checked before anything is stored or recorded: the requester's role, every subject and
vocabulary term (database only), then every file (a path outside the allowed folders, an unreadable
image, a video ffprobe cannot read or that is too long) refuses the whole batch with one line naming the
job, before a single byte is uploaded. Should a later step still fail, the objects this submission
uploaded (and no other job uses) are removed again, so a refused batch leaves nothing in storage. Consent is not checked here but at render time (and again at publish time),
because what counts is the consent in force when the video is made and delivered.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from flows.batch.batchfile import BatchRequest, JobRequest
from flows.runtime.root import Runtime
from governance import assets, batches
from governance.enums import AssetKind
from governance.errors import NotFound, ValidationFailed
from governance.schema import Asset
from governance.subjects import find_subject
from governance.uow import unit_of_work
from governance.users import get_user_by_email, require_role
from governance.vocabulary import check_term
from models.digest import sha256_file
from pipeline.errors import PipelineError

logger = logging.getLogger(__name__)
T = TypeVar("T")


class SubmissionError(ValueError):
    """A job of the batch cannot be submitted; the message names the job and the cause."""


@dataclass(frozen=True)
class CheckedInput:
    """A local input file that passed its checks, with what storage and the asset row need."""

    path: Path
    kind: AssetKind
    sha256: str
    size: int
    media_type: str
    media_info: dict[str, object]


def input_key(sha256: str, path: Path) -> str:
    """Inputs are stored by content (`inputs/<sha256>/<suffix>`): the same file is stored once."""
    suffix = path.suffix.lower().lstrip(".") or "bin"
    return f"inputs/{sha256}/original.{suffix}"


def check_input(rt: Runtime, path: Path, kind: AssetKind, *, where: str) -> CheckedInput:
    """Refuse a path outside the allowed folders or a file the pipeline cannot read."""
    from pipeline.images import load_image
    from pipeline.inputs import require_allowed_path
    from pipeline.video.reader import probe

    try:
        safe = require_allowed_path(path, rt.settings.allowed_input_dirs)
        if kind == AssetKind.portrait:
            image = load_image(safe, max_pixels=rt.settings.max_image_pixels)
            info: dict[str, object] = {"width": int(image.shape[1]), "height": int(image.shape[0])}
        else:
            video = probe(
                safe, max_seconds=rt.settings.max_video_seconds, max_frames=rt.settings.max_video_frames
            )
            info = {
                "width": video.width,
                "height": video.height,
                "fps": video.fps,
                "frames": video.frame_count,
                "duration": video.duration,
            }
    except PipelineError as exc:
        raise SubmissionError(f"{where}: {exc}") from None
    media_type = mimetypes.guess_type(safe.name)[0] or "application/octet-stream"
    return CheckedInput(
        path=safe,
        kind=kind,
        sha256=sha256_file(safe),
        size=safe.stat().st_size,
        media_type=media_type,
        media_info=info,
    )


def submit_batch(rt: Runtime, request: BatchRequest, *, requested_by_email: str) -> str:
    """Check, store and register every input, then create the batch and its jobs; returns the batch id.

    Raises:
        SubmissionError: an input is refused (the message names the job).
        governance.errors.GovernanceError: the requester may not submit, or a subject/term is unknown.
    """
    subjects = check_request(rt, request, requested_by_email=requested_by_email)
    checked: list[tuple[JobRequest, CheckedInput, CheckedInput]] = []
    for index, job in enumerate(request.jobs, start=1):
        where = f"job {index}"
        checked.append(
            (
                job,
                check_input(rt, job.portrait, AssetKind.portrait, where=f"{where} portrait"),
                check_input(rt, job.driving, AssetKind.driving_video, where=f"{where} driving video"),
            )
        )
    inputs = [item for _, portrait, driving in checked for item in (portrait, driving)]
    return upload_then_record(
        rt, inputs, lambda: _record(rt, request, checked, subjects, requested_by_email=requested_by_email)
    )


def upload_then_record(rt: Runtime, inputs: Iterable[CheckedInput], record: Callable[[], T]) -> T:
    """Store each distinct checked input once, then run `record` (the rows); should either fail, remove the
    objects this call created, so a refused submission leaves nothing in storage. The console's batch form
    goes through here too."""
    stored = {item.sha256: item for item in inputs}
    uploaded: list[str] = []
    try:
        for item in stored.values():
            key = input_key(item.sha256, item.path)
            existed = rt.store.exists("inputs", key)
            rt.store.put_file(
                "inputs", key, item.path, metadata={"kind": item.kind.value}, expected_sha256=item.sha256
            )
            if not existed:
                uploaded.append(key)
        return record()
    except Exception:
        remove_uploads(rt, uploaded)
        raise


def check_request(rt: Runtime, request: BatchRequest, *, requested_by_email: str) -> dict[str, str]:
    """What only the database can refuse, before any file is read or stored: the requester's role, each
    job's subject and vocabulary terms. Returns subject reference -> subject id."""
    return check_jobs(
        rt,
        [
            JobUse(index, job.subject, job.purpose, job.channel, job.territory)
            for index, job in enumerate(request.jobs, start=1)
        ],
        requested_by_email=requested_by_email,
    )


class JobUse(NamedTuple):
    """One job's subject (id or reference) and intended use, as `check_jobs` checks them."""

    number: int  # 1-based, as the refusal names the job (`index` would shadow tuple.index)
    subject: str
    purpose: str
    channel: str
    territory: str


def check_jobs(rt: Runtime, jobs: Iterable[JobUse], *, requested_by_email: str) -> dict[str, str]:
    """The database-only checks of a submission (the CLI's batch file and the console's form alike): the
    requester's role, then each job's subject and vocabulary terms, the refusal naming the job.
    Returns subject id or reference -> subject id."""
    subjects: dict[str, str] = {}
    with unit_of_work(rt.sessions) as session:
        require_role(session, email=requested_by_email, roles=batches.REQUESTING_ROLES, action="batch.create")
        for job in jobs:
            try:
                if job.subject not in subjects:
                    subjects[job.subject] = find_subject(session, job.subject).id
                check_term("purpose", job.purpose)
                check_term("channel", job.channel)
                check_term("territory", job.territory)
            except (NotFound, ValidationFailed) as exc:
                raise type(exc)(f"job {job.number}: {exc}") from None
    return subjects


def remove_uploads(rt: Runtime, keys: list[str]) -> None:
    """Compensation: delete the input objects this submission created, unless an asset row (another
    submission's) already refers to one of them."""
    if not keys:
        return
    bucket = rt.store.bucket_name("inputs")
    try:
        with unit_of_work(rt.sessions) as session:
            used = set(
                session.scalars(
                    select(Asset.object_key).where(Asset.bucket == bucket, Asset.object_key.in_(keys))
                )
            )
        for key in keys:
            if key not in used:
                rt.store.delete("inputs", key)
    except Exception as exc:  # noqa: BLE001 - the original error is the one to report
        logger.warning("could not remove the inputs of a refused submission (%s): %s", ", ".join(keys), exc)
    else:
        logger.info(
            "refused submission: removed %d uploaded input(s)", len([k for k in keys if k not in used])
        )


def _record(
    rt: Runtime,
    request: BatchRequest,
    checked: list[tuple[JobRequest, CheckedInput, CheckedInput]],
    subjects: dict[str, str],
    *,
    requested_by_email: str,
) -> str:
    """Register the assets and create the batch and its jobs, in one unit of work."""
    bucket = rt.store.bucket_name("inputs")
    with unit_of_work(rt.sessions) as session:
        requester = get_user_by_email(session, requested_by_email)
        asset_ids: dict[tuple[str, AssetKind, str], str] = {}
        specs = []
        for job, portrait, driving in checked:
            subject_id = subjects[job.subject]
            ids = []
            for item in (portrait, driving):
                cache_key = (item.sha256, item.kind, subject_id)
                if cache_key not in asset_ids:
                    asset_ids[cache_key] = asset_id_for(
                        session, item, bucket=bucket, subject_id=subject_id, actor=requester.email
                    )
                ids.append(asset_ids[cache_key])
            specs.append(
                batches.NewJob(
                    subject_id=subject_id,
                    portrait_asset_id=ids[0],
                    driving_asset_id=ids[1],
                    purpose=job.purpose,
                    channel=job.channel,
                    territory=job.territory,
                    seed=job.seed,
                )
            )
        batch = batches.create_batch(
            session,
            name=request.name,
            requested_by=requester.id,
            jobs=specs,
            spec=request.model_dump(mode="json"),
        )
        batch_id = batch.id
    logger.info("batch %s submitted with %d job(s)", batch_id, len(request.jobs))
    return batch_id


def asset_id_for(session: Session, item: CheckedInput, *, bucket: str, subject_id: str, actor: str) -> str:
    """Reuse the asset row of an identical file of the same kind and subject, or register a new one."""
    for existing in assets.find_by_sha256(session, item.sha256, kind=item.kind):
        if existing.subject_id == subject_id and existing.bucket == bucket:
            return existing.id
    asset = assets.register_asset(
        session,
        kind=item.kind,
        bucket=bucket,
        object_key=input_key(item.sha256, item.path),
        sha256=item.sha256,
        size_bytes=item.size,
        actor=actor,
        media_type=item.media_type,
        media_info=item.media_info,
        subject_id=subject_id,
    )
    return asset.id
