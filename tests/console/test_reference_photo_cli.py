"""`likeness consent grant --reference-photo`: the photo is checked like a portrait (one face, large enough)
before anything is kept, and a grant refused after storing leaves neither evidence copy nor photo behind.
Real SQLite, the real SeaweedFS server, the real CLI in-process."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from console.cli.app import app
from flows.consent.references import discard_unreferenced, store_upload
from flows.runtime.root import Runtime
from governance.database import make_engine, make_session_factory
from governance.schema import Consent, LikenessReference
from tests.console.argv import consent_grant
from tests.fixtures.media import BadMedia
from tests.fixtures.storage import S3ServerHandle

pytestmark = [pytest.mark.s3, pytest.mark.slow]
COMPLIANCE = "comp@example.org"


@pytest.fixture
def cli(
    sqlite_db_url: str, s3_server: S3ServerHandle, tmp_path: Path
) -> tuple[Callable[..., Result], Runtime]:
    photos = tmp_path / "photos"
    photos.mkdir()
    env = {
        "LIKENESS_DATABASE_URL": sqlite_db_url,
        "LIKENESS_VAR_DIR": str(tmp_path / "var"),
        **s3_server.env(),
        "LIKENESS_ALLOWED_INPUT_DIRS": json.dumps([str(photos)]),
        "LIKENESS_ACTOR": "",
        "COLUMNS": "250",
    }
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env)

    for args in (
        ("user", "add", "admin@example.org", "--role", "admin"),
        ("user", "add", COMPLIANCE, "--role", "compliance", "--actor", "admin@example.org"),
        ("subject", "add", "--reference", "S-1", "--name", "Ada", "--actor", COMPLIANCE),
    ):
        assert invoke(*args).exit_code == 0
    settings = s3_server.settings(
        tmp_path / "var",
        sqlite_db_url,
        bucket_prefix=env["LIKENESS_S3_BUCKET_PREFIX"],
        allowed_input_dirs=[photos],
    )
    rt = Runtime(settings)
    yield invoke, rt
    rt.close()


def grant_args(tmp_path: Path, photo: Path, *extra: str) -> list[str]:
    evidence = tmp_path / "form.pdf"
    evidence.write_bytes(b"%PDF-1.4 signed consent form")
    target = tmp_path / "photos" / photo.name
    target.write_bytes(photo.read_bytes())
    return consent_grant(
        evidence,
        hashlib.sha256(evidence.read_bytes()).hexdigest(),
        "--until",
        "2099-01-01",
        "--actor",
        COMPLIANCE,
        "--reference-photo",
        str(target),
        *extra,
    )


def keys(rt: Runtime) -> list[str]:
    store = rt.store
    return [o.object_name for o in store.client.list_objects(store.bucket_name("inputs"), recursive=True)]


def photo_keys(rt: Runtime) -> list[str]:
    """The reference photos in the inputs bucket (the consent's evidence is kept there too)."""
    return [key for key in keys(rt) if key.startswith("references/")]


def rows(rt: Runtime, model: type) -> int:
    engine = make_engine(rt.settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            return len(list(session.scalars(select(model))))
    finally:
        engine.dispose()


def evidence_copies(rt: Runtime) -> list[Path]:
    folder = rt.settings.var_dir / "evidence"
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_face_image", "no face found in reference photo"),
        ("two_faces_image", "shows 2 faces; exactly one is required"),
        ("small_face_image", "px wide; at least 64 px is required"),
    ],
)
def test_grant_refuses_a_photo_that_is_no_usable_portrait(
    cli: tuple[Callable[..., Result], Runtime],
    bad_media: BadMedia,
    tmp_path: Path,
    name: str,
    message: str,
) -> None:
    invoke, rt = cli
    result = invoke(*grant_args(tmp_path, getattr(bad_media, name)))
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1 and message in result.output
    assert rows(rt, Consent) == rows(rt, LikenessReference) == 0
    assert evidence_copies(rt) == [] and keys(rt) == []


def test_grant_with_a_good_photo_attaches_it_and_a_later_refusal_removes_it(
    cli: tuple[Callable[..., Result], Runtime],
    portrait_path: Path,
    tmp_path: Path,
) -> None:
    invoke, rt = cli
    # Refused after the photo was stored (unknown subject): nothing is kept.
    refused = invoke(*[a if a != "S-1" else "S-404" for a in grant_args(tmp_path, portrait_path)])
    assert refused.exit_code == 1 and "error: subject S-404 not found" in refused.output
    assert (
        rows(rt, Consent) == rows(rt, LikenessReference) == 0 and evidence_copies(rt) == [] and keys(rt) == []
    )
    inverted = invoke(*grant_args(tmp_path, portrait_path, "--from", "2099-06-01"))
    assert inverted.exit_code == 1 and "is not after valid_from" in inverted.output and keys(rt) == []

    granted = invoke(*grant_args(tmp_path, portrait_path))
    assert granted.exit_code == 0, granted.output
    assert "reference photo stored as" in granted.output
    [key] = photo_keys(rt)
    assert key.startswith("references/") and rows(rt, LikenessReference) == 1 and rows(rt, Consent) == 1
    assert [k for k in keys(rt) if k.startswith("evidence/")], "the evidence is kept in object storage"


def test_discard_keeps_what_a_recorded_reference_or_an_older_upload_uses(
    cli: tuple[Callable[..., Result], Runtime],
    portrait_path: Path,
    tmp_path: Path,
) -> None:
    invoke, rt = cli
    assert invoke(*grant_args(tmp_path, portrait_path)).exit_code == 0
    [key] = photo_keys(rt)
    digest = hashlib.sha256(portrait_path.read_bytes()).hexdigest()
    again = store_upload(rt, portrait_path, digest, prefix="references", kind="reference")
    assert (again.key, again.created) == (key, False)
    discard_unreferenced(rt, [again, again.__class__(again.bucket, again.key, digest, created=True)])
    assert photo_keys(rt) == [key]  # not created by this request, and in use by a recorded reference
    other = tmp_path / "other.png"
    other.write_bytes(portrait_path.read_bytes() + b"\0")
    fresh = store_upload(
        rt, other, hashlib.sha256(other.read_bytes()).hexdigest(), prefix="references", kind="reference"
    )
    assert fresh.created and len(photo_keys(rt)) == 2
    discard_unreferenced(rt, [fresh, None])
    assert photo_keys(rt) == [key]
