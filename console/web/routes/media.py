"""A job's media (render, portrait, driving video) and subjects' reference photos, streamed through the
app so RBAC covers every byte."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from console.web.errors import PageNotFound
from console.web.mediafiles import cached_copy
from console.web.state import console, current_user
from flows.jobs.data import StoredRef
from governance import assets, jobs
from governance.access import record_read
from governance.enums import Role
from governance.schema import LikenessReference
from governance.uow import unit_of_work

router = APIRouter()


@router.get("/jobs/{job_id}/media/{which}", name="job_media")
def job_media(request: Request, job_id: str, which: Literal["output", "portrait", "driving"]) -> FileResponse:
    """The job's render (from quarantine or wherever the job records it), portrait or driving video.

    Each viewing is an audited read (`access.read`, as `likeness review show --download`); a player's
    follow-up range requests for the same file are not recorded again.
    """
    state = console(request)
    with unit_of_work(state.runtime.sessions) as db:
        job = jobs.get_job(db, job_id)
        if request.headers.get("range", "bytes=0-").replace(" ", "").startswith("bytes=0-"):
            record_read(
                db,
                actor_email=current_user(request).email,
                roles=(Role.reviewer, Role.auditor),
                what=f"job_media.{which}",
                resource_type="job",
                resource_id=job.id,
                subject_id=job.subject_id,
                job_id=job.id,
            )
        if which == "output":
            if not (job.output_bucket and job.output_key and job.output_sha256):
                raise PageNotFound(f"job {job_id} has no render yet")
            ref = StoredRef(job.output_bucket, job.output_key, job.output_sha256)
        else:
            asset = assets.get_asset(
                db, job.portrait_asset_id if which == "portrait" else job.driving_asset_id
            )
            ref = StoredRef(asset.bucket, asset.object_key, asset.sha256)
    path, media_type = cached_copy(state, ref)
    return FileResponse(path, media_type=media_type, headers={"cache-control": "no-store"})


@router.get("/subjects/{subject_id}/references/{reference_id}", name="reference_photo")
def reference_photo(request: Request, subject_id: str, reference_id: str) -> FileResponse:
    """A subject's reference photo (thumbnails on the subject page, beside the portrait for reviewers)."""
    state = console(request)
    with unit_of_work(state.runtime.sessions) as db:
        reference = db.get(LikenessReference, reference_id)
        if reference is None or reference.subject_id != subject_id:
            raise PageNotFound(f"subject {subject_id} has no reference photo {reference_id}")
        ref = StoredRef(reference.bucket, reference.object_key, reference.sha256)
    path, media_type = cached_copy(state, ref)
    return FileResponse(path, media_type=media_type, headers={"cache-control": "no-store"})
