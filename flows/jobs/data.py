"""What a job is made from, read once from the database as plain data, and its local workspace.

No ORM object leaves a unit of work: steps read a `JobSpec` (ids, object keys, hashes, the requested
use) and then do their slow work (downloads, face detection, the model) outside any transaction.
Inputs are fetched into a per-job folder and checked against the SHA-256 recorded at submission, so a
replaced object in storage is refused instead of rendered.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.enums import JobState
from governance.errors import NotFound
from governance.jobs import get_job
from governance.schema import Asset, Batch, LikenessReference
from pipeline.errors import InputError
from pipeline.storage.objects import ObjectStore


class InputChanged(InputError):
    """An input object no longer hashes to what was recorded when the batch was submitted."""


@dataclass(frozen=True)
class StoredRef:
    """An object in storage and the hash it must have."""

    bucket: str
    key: str
    sha256: str


@dataclass(frozen=True)
class JobSpec:
    """Everything the render and publish steps need to know about one job, as plain values."""

    job_id: str
    batch_id: str
    requested_by: str
    subject_id: str
    purpose: str
    channel: str
    territory: str
    seed: int
    portrait: StoredRef
    driving: StoredRef
    reference: StoredRef | None
    options: dict[str, object]


def _ref(asset: Asset) -> StoredRef:
    return StoredRef(bucket=asset.bucket, key=asset.object_key, sha256=asset.sha256)


def seed_for(job_id: str) -> int:
    """A stable seed derived from the job id, so a rerun renders the same video."""
    return int(job_id.replace("-", "")[:15], 16)


def load_job_spec(session: Session, job_id: str) -> JobSpec:
    """Read a job, its assets, batch and the subject's active likeness reference into a `JobSpec`."""
    job = get_job(session, job_id)
    portrait = session.get(Asset, job.portrait_asset_id)
    driving = session.get(Asset, job.driving_asset_id)
    batch = session.get(Batch, job.batch_id)
    if portrait is None or driving is None or batch is None:
        raise NotFound(f"job {job_id}: its portrait, driving video or batch row is missing")
    reference = session.scalars(
        select(LikenessReference)
        .where(LikenessReference.subject_id == job.subject_id, LikenessReference.active.is_(True))
        .order_by(LikenessReference.created_at.desc())
        .limit(1)
    ).first()
    return JobSpec(
        job_id=job.id,
        batch_id=job.batch_id,
        requested_by=batch.requested_by,
        subject_id=job.subject_id,
        purpose=job.purpose,
        channel=job.channel,
        territory=job.territory,
        seed=job.seed if job.seed is not None else seed_for(job.id),
        portrait=_ref(portrait),
        driving=_ref(driving),
        reference=(
            StoredRef(bucket=reference.bucket, key=reference.object_key, sha256=reference.sha256)
            if reference is not None
            else None
        ),
        options=dict(job.options or {}),
    )


# States after which a worker has nothing more to do with a job's files (the render flow also lets go of
# a job it leaves at `awaiting_review`: publishing fetches what it needs again, on whatever machine).
FINAL_STATES = frozenset(
    {JobState.published, JobState.rejected, JobState.refused, JobState.failed, JobState.taken_down}
)
PUBLISH_PREFIX = "publish-"


def workspace(root: Path, job_id: str) -> Path:
    """The job's scratch folder (`<root>/<job id>`), created empty-or-existing."""
    path = root / job_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def workspace_paths(root: Path, job_id: str) -> list[Path]:
    """Every local folder of a job: its render workspace and its publishing workspace."""
    return [root / job_id, root / f"{PUBLISH_PREFIX}{job_id}"]


def clear_workspace(root: Path, job_id: str) -> bool:
    """Remove the job's scratch folders (inputs, reference photo, the unmarked render, partial files of a
    killed run, temporary files); nothing of a job stays on a worker's disk after it.

    Returns whether anything was there. Never raises for a folder that is already gone.
    """
    found = False
    for path in workspace_paths(root, job_id):
        if path.exists() or path.is_symlink():
            found = True
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return found


def workspace_job_id(folder: Path) -> str:
    """The job id a workspace folder belongs to (`<id>` or `publish-<id>`)."""
    return folder.name.removeprefix(PUBLISH_PREFIX)


def local_name(folder: Path, stem: str, ref: StoredRef) -> Path:
    """A workspace path for `ref` keeping its extension (`portrait.png`, `driving.mp4`)."""
    return folder / f"{stem}{Path(ref.key).suffix.lower()}"


def fetch(store: ObjectStore, ref: StoredRef, dest: Path) -> Path:
    """Download `ref` to `dest` (reusing a present copy with the right hash) and check its SHA-256."""
    from models.digest import sha256_file

    if dest.exists() and sha256_file(dest) == ref.sha256:
        return dest
    stored = store.get_file(ref.bucket, ref.key, dest)
    if stored.sha256 != ref.sha256:
        dest.unlink(missing_ok=True)
        raise InputChanged(
            f"object {ref.bucket}/{ref.key} has sha256 {stored.sha256[:12]}..., "
            f"recorded {ref.sha256[:12]}...: refusing a changed input"
        )
    return dest
