"""A subject's reference photo, checked when consent is granted, and the clean-up of a refused grant.

The photo must be a usable portrait by the same rules as every portrait (`pipeline.faces.portrait.single_face`:
exactly one face, large enough, not cut by the border): binding later compares job portraits with it,
and with a group photo it would bind to whoever is largest. The console and `likeness consent grant`
both call `check_reference_photo` before anything is stored. Uploads are stored content-addressed, so
a refused grant removes only what it stored itself and nothing that a recorded consent or reference
uses (`discard_unreferenced`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from flows.batch.submission import CheckedInput, SubmissionError, check_input
from flows.runtime.root import Runtime
from governance.enums import AssetKind
from governance.schema import Consent, LikenessReference
from governance.uow import unit_of_work
from pipeline.errors import PipelineError

logger = logging.getLogger(__name__)

S3_SCHEME = "s3://"


@dataclass(frozen=True)
class StoredUpload:
    """An upload in the inputs bucket, and whether this request created it (so may remove it again)."""

    bucket: str
    key: str
    sha256: str
    created: bool


def check_reference_photo(rt: Runtime, path: Path, *, name: str | None = None) -> CheckedInput:
    """Refuse a reference photo the pipeline cannot read or that is not a usable portrait (one line, naming it).

    `name` is how the person knows the file (the console's upload name); the path is used otherwise.
    """
    from pipeline.faces.portrait import single_face
    from pipeline.images import load_image

    shown = repr(name) if name is not None else str(path)
    try:
        checked = check_input(rt, path, AssetKind.portrait, where="reference photo")
    except SubmissionError as exc:  # name the file as the person knows it, not a spool path
        raise SubmissionError(str(exc).replace(str(path), shown)) from None
    try:
        single_face(
            load_image(checked.path, max_pixels=rt.settings.max_image_pixels),
            where=f"reference photo {shown}",
        )
    except PipelineError as exc:
        raise SubmissionError(str(exc)) from None
    return checked


def store_upload(rt: Runtime, path: Path, sha256: str, *, prefix: str, kind: str) -> StoredUpload:
    """Put a checked file in the inputs bucket under `<prefix>/<sha256>/original<suffix>`."""
    store = rt.store
    key = f"{prefix}/{sha256}/original{path.suffix.lower()}"
    existed = store.exists("inputs", key)
    stored = store.put_file("inputs", key, path, metadata={"kind": kind}, expected_sha256=sha256)
    return StoredUpload(stored.bucket, stored.key, stored.sha256, created=not existed)


def discard_unreferenced(rt: Runtime, uploads: list[StoredUpload | None]) -> None:
    """After a refused grant: remove what it stored, unless a recorded consent or reference now uses it.

    A failure to remove is logged, not raised: the refusal is what the person must see.
    """
    for upload in uploads:
        if upload is None or not upload.created:
            continue
        with unit_of_work(rt.sessions) as session:
            in_use = (
                session.scalars(
                    select(Consent.id).where(
                        Consent.evidence_key == f"{S3_SCHEME}{upload.bucket}/{upload.key}"
                    )
                ).first()
                or session.scalars(
                    select(LikenessReference.id).where(
                        LikenessReference.bucket == upload.bucket, LikenessReference.object_key == upload.key
                    )
                ).first()
            )
        if in_use is not None:
            continue
        try:
            rt.store.delete("inputs", upload.key)
        except (PipelineError, OSError) as exc:
            logger.warning("could not remove %s/%s after a refused grant: %s", upload.bucket, upload.key, exc)
