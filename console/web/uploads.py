"""Uploaded files: spooled to disk under the console's upload folder, typed by their first bytes (never by
the name or the browser's Content-Type), hashed, and removed when the request is done."""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import UploadFile

from console.web.errors import UploadRejected

CHUNK = 1 << 20


@dataclass(frozen=True)
class FileKind:
    """What an upload may be: a label for messages and the formats accepted."""

    label: str
    formats: tuple[str, ...]


IMAGE = FileKind("image (JPEG or PNG)", ("jpeg", "png"))
EVIDENCE = FileKind("evidence document (PDF, JPEG or PNG)", ("pdf", "jpeg", "png"))
VIDEO = FileKind("video (MP4, MOV or WebM)", ("mp4", "mov", "webm"))

SUFFIX = {"jpeg": ".jpg", "png": ".png", "pdf": ".pdf", "mp4": ".mp4", "mov": ".mov", "webm": ".webm"}


def sniff(head: bytes) -> str | None:
    """The format the first bytes of a file announce, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    return None


@dataclass(frozen=True)
class SavedUpload:
    """An upload on local disk, with its checked format and hash."""

    path: Path
    format: str
    sha256: str
    size: int
    original_name: str


def _clean_name(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name or "upload").stem)[:60] or "upload"
    return stem.lstrip(".") or "upload"


@contextlib.contextmanager
def upload_folder(root: Path) -> Iterator[Path]:
    """A private folder for one request's uploads, removed afterwards whatever happens."""
    folder = root / secrets.token_hex(8)
    folder.mkdir(parents=True, mode=0o700)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def has_file(upload: UploadFile | None) -> bool:
    """Browsers send an empty part with no name when a file field is left empty."""
    return upload is not None and bool(upload.filename)


def save_upload(upload: UploadFile, folder: Path, kind: FileKind, *, field: str) -> SavedUpload:
    """Copy an upload to `folder`, refusing empty files and formats other than `kind` allows."""
    upload.file.seek(0)
    head = upload.file.read(16)
    if not head:
        raise UploadRejected(f"{field}: the file {upload.filename!r} is empty")
    found = sniff(head)
    if found not in kind.formats:
        raise UploadRejected(f"{field}: {upload.filename!r} is not an accepted {kind.label}")
    assert found is not None
    path = folder / f"{_clean_name(upload.filename or '')}-{field.replace(' ', '_')}{SUFFIX[found]}"
    digest = hashlib.sha256()
    size = 0
    upload.file.seek(0)
    with path.open("wb") as out:
        for chunk in iter(lambda: upload.file.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return SavedUpload(path, found, digest.hexdigest(), size, upload.filename or "")
