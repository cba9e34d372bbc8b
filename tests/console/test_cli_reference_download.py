"""`likeness subject reference add` and `likeness publication download` through the real CLI, on a real
SQLite database and the real S3 server: what is stored, what is refused (one line), what is audited."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from console.cli.app import app
from governance.schema import AuditEvent, LikenessReference
from governance.uow import unit_of_work
from tests.fixtures.env import services_env
from tests.web.conftest import MEDIA, WebWorld, build_world

pytestmark = pytest.mark.s3


@pytest.fixture
def world(sqlite_db_url: str, tmp_path: Path, s3_server: Any) -> Any:
    built = build_world(tmp_path, sqlite_db_url, s3=s3_server)
    yield built
    built.runtime.close()


def cli(world: WebWorld, *args: str, ok: bool = True, allowed: Path | None = None) -> Result:
    settings = world.runtime.settings
    env = {
        **services_env(settings),
        "LIKENESS_ACTOR": None,
        "COLUMNS": "250",
        "LIKENESS_ALLOWED_INPUT_DIRS": f'["{allowed or world.tmp}"]',
    }
    result = CliRunner().invoke(app, list(args), env=env)
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1, result.output
        assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    return result


def references(world: WebWorld) -> list[LikenessReference]:
    with unit_of_work(world.sf) as db:
        return list(db.scalars(select(LikenessReference)))


def test_subject_reference_add_stores_the_photo_as_the_console_does(world: WebWorld, tmp_path: Path) -> None:
    photo = tmp_path / "ref.png"
    photo.write_bytes((MEDIA / "portrait_astronaut.png").read_bytes())
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    done = cli(world, "subject", "reference", "add", "S-1", str(photo), "--actor", "compliance@example.org")
    assert f"/references/{digest}/original.png" in done.output
    [reference] = references(world)
    assert reference.sha256 == digest and reference.object_key == f"references/{digest}/original.png"
    back = tmp_path / "back.png"
    world.runtime.store.get_file(reference.bucket, reference.object_key, back)
    assert back.read_bytes() == photo.read_bytes()
    # The console shows it (the reviewer's page and the subject's thumbnails use this route).
    client = world.client("compliance")
    shown = client.get(f"/subjects/{world.subject_id}/references/{reference.id}")
    assert shown.status_code == 200 and shown.content == photo.read_bytes()


def test_subject_reference_add_refusals_store_nothing(world: WebWorld, tmp_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"not an image at all")
    photo = tmp_path / "ref.png"
    photo.write_bytes((MEDIA / "portrait_astronaut.png").read_bytes())
    assert (
        "reference photo:"
        in cli(
            world,
            "subject",
            "reference",
            "add",
            "S-1",
            str(fake),
            "--actor",
            "compliance@example.org",
            ok=False,
        ).output
    )
    outside = cli(
        world,
        "subject",
        "reference",
        "add",
        "S-1",
        str(photo),
        "--actor",
        "compliance@example.org",
        ok=False,
        allowed=tmp_path / "elsewhere",
    ).output
    assert outside.startswith("error: reference photo:")
    denied = cli(
        world, "subject", "reference", "add", "S-1", str(photo), "--actor", "operator@example.org", ok=False
    ).output
    assert "lacks role" in denied
    assert (
        "subject S-404 not found"
        in cli(
            world,
            "subject",
            "reference",
            "add",
            "S-404",
            str(photo),
            "--actor",
            "compliance@example.org",
            ok=False,
        ).output
    )
    assert references(world) == []


def test_publication_download_checks_the_hash_and_is_audited(world: WebWorld, tmp_path: Path) -> None:
    job_id = world.job_awaiting_review()
    video = tmp_path / "final.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42 a published video stand-in")
    stored, publication_id = world.publish_file(job_id, video, payload=77)
    target = tmp_path / "copy.mp4"
    done = cli(
        world, "publication", "download", publication_id, "--actor", "auditor@example.org", "-o", str(target)
    )
    assert target.read_bytes() == video.read_bytes() and stored.sha256 in done.output
    assert (
        "already exists"
        in cli(
            world,
            "publication",
            "download",
            publication_id,
            "--actor",
            "auditor@example.org",
            "-o",
            str(target),
            ok=False,
        ).output
    )
    with unit_of_work(world.sf) as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "publication.downloaded")).one()
        assert event.actor == "auditor@example.org" and event.resource_id == publication_id
    assert (
        "not found"
        in cli(
            world,
            "publication",
            "download",
            "00000000-0000-0000-0000-000000000000",
            "--actor",
            "auditor@example.org",
            ok=False,
        ).output
    )
