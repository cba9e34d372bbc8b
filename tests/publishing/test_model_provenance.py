"""The published video's C2PA manifest and `likeness verify` name the registered model it was made with."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from console.cli.app import app
from flows.publish.delivery import mark_and_publish
from flows.publish.verify import verify_file
from governance import models_registry
from governance.uow import unit_of_work
from pipeline.marks import provenance
from tests.fixtures.env import services_env
from tests.publishing.conftest import PublishWorld

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def test_manifest_and_verify_name_the_registered_model(
    publish_world: PublishWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = publish_world
    with unit_of_work(world.sf) as session:
        models_registry.register_model(
            session,
            name="mcnet-team",
            version="2.1",
            sha256=world.model_sha256,
            config={"image_size": 64},
            actor_email=world.operator_email,
        )
    result = mark_and_publish(world.runtime, job_id=world.job_id, actor="system:publish")
    published = tmp_path / "published.mp4"
    world.store.get_file("published", result.object_key, published)

    manifest = provenance.read_manifest(published)
    assert (
        manifest.generation["model"],
        manifest.generation["model_version"],
        manifest.generation["model_sha256"],
    ) == ("mcnet-team", "2.1", world.model_sha256)
    report = verify_file(published, sessions=world.sf, trust=None)
    assert report.model is not None and (report.model["name"], report.model["version"]) == (
        "mcnet-team",
        "2.1",
    )

    settings = world.runtime.settings
    for key, value in {
        **services_env(settings),
        "COLUMNS": "250",
    }.items():
        monkeypatch.setenv(key, value)
    shown = CliRunner().invoke(app, ["verify", str(published), "--actor", "compliance@example.org"])
    assert shown.exit_code == 0, shown.output
    assert "mcnet-team@2.1" in shown.output and world.model_sha256 in shown.output
