"""The publishing commands through the real CLI: storage up/status/down, verify, publication."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from console.cli.app import app
from flows.publish.delivery import mark_and_publish
from governance.migrate import upgrade
from governance.schema import AuditEvent
from pipeline.storage.local_s3 import choose_ports
from tests.fixtures.env import services_env
from tests.publishing.conftest import PublishWorld

pytestmark = [pytest.mark.s3, pytest.mark.slow]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "LIKENESS_VAR_DIR": str(tmp_path / "var"),
        "LIKENESS_S3_ENDPOINT": f"127.0.0.1:{choose_ports()['s3']}",
        "LIKENESS_S3_ACCESS_KEY": "cli-key",
        "LIKENESS_S3_SECRET_KEY": "cli-secret-0123456789",
        "LIKENESS_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def test_storage_up_status_down(env: dict[str, str]) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["storage", "status"]).exit_code == 1
    try:
        started = runner.invoke(app, ["storage", "up"])
        assert started.exit_code == 0, started.output
        assert f"endpoint {env['LIKENESS_S3_ENDPOINT']}" in started.output
        assert "likeness-published (versioned, object lock)" in started.output
        status = runner.invoke(app, ["storage", "status"])
        assert status.exit_code == 0 and "running" in status.output
    finally:
        stopped = runner.invoke(app, ["storage", "down"])
    assert "S3 server stopped" in stopped.output
    assert runner.invoke(app, ["storage", "status"]).exit_code == 1
    assert "not running" in runner.invoke(app, ["storage", "down"]).output


def test_storage_up_refuses_a_remote_endpoint(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIKENESS_S3_ENDPOINT", "s3.example.com:443")
    result = CliRunner().invoke(app, ["storage", "up"])
    assert result.exit_code == 1
    assert (
        "error: LIKENESS_S3_ENDPOINT 's3.example.com:443' is not a 127.0.0.1:PORT endpoint" in result.output
    )
    assert not (Path(env["LIKENESS_VAR_DIR"]) / "s3" / "server.json").exists()


def test_verify_unmarked_and_missing_file(env: dict[str, str], clip: Path) -> None:
    upgrade(env["LIKENESS_DATABASE_URL"])
    runner = CliRunner()
    assert runner.invoke(app, ["user", "add", "aud@example.org", "--role", "admin"]).exit_code == 0
    result = runner.invoke(app, ["verify", str(clip), "--actor", "aud@example.org"])
    assert result.exit_code == 0, result.output
    assert "not published by likeness" in result.output
    missing = runner.invoke(
        app, ["verify", str(Path(env["LIKENESS_VAR_DIR"]) / "nope.mp4"), "--actor", "aud@example.org"]
    )
    assert missing.exit_code == 1 and "error: file not found" in missing.output
    nobody = runner.invoke(app, ["verify", str(clip), "--actor", "ghost@example.org"])
    assert nobody.exit_code == 1 and "error: user ghost@example.org not found" in nobody.output


def test_verify_and_takedown_of_a_publication(
    publish_world: PublishWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    world = publish_world
    settings = world.runtime.settings
    for key, value in {
        **services_env(settings),
    }.items():
        monkeypatch.setenv(key, value)
    result = mark_and_publish(world.runtime, job_id=world.job_id, actor="system:publish")
    published = tmp_path / "published.mp4"
    world.store.get_file("published", result.object_key, published)
    runner = CliRunner()
    shown = runner.invoke(app, ["verify", str(published), "--actor", world.compliance_email])
    assert shown.exit_code == 0, shown.output
    assert "published by likeness" in shown.output and "Trusted" in shown.output
    assert world.job_id in shown.output
    listed = runner.invoke(app, ["publication", "list", "--actor", world.compliance_email])
    assert result.publication_id in listed.output
    denied = runner.invoke(
        app,
        ["publication", "takedown", result.publication_id, "--reason", "x", "--actor", world.operator_email],
    )
    assert denied.exit_code == 1 and "lacks role compliance or admin" in denied.output
    done = runner.invoke(
        app,
        [
            "publication",
            "takedown",
            result.publication_id,
            "--reason",
            "court order",
            "--actor",
            world.compliance_email,
        ],
    )
    assert done.exit_code == 0, done.output
    assert "taken down by compliance@example.org" in done.output
    assert not world.store.exists("published", result.object_key)
    after = runner.invoke(app, ["verify", str(published), "--actor", world.compliance_email])
    assert "WITHDRAWN (TAKEN DOWN)" in after.output and "court order" in after.output
    # Every read of a publication's record is on record: who, what, which publication.
    with world.sf() as session:
        reads = [
            (e.actor, e.details["what"], e.resource_id)
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.action == "access.read").order_by(AuditEvent.seq)
            )
        ]
    assert reads == [
        (world.compliance_email, "verify", result.publication_id),
        (world.compliance_email, "publication.list", None),
        (world.compliance_email, "verify", result.publication_id),
    ]
    refused = runner.invoke(
        app, ["publication", "show", result.publication_id, "--actor", world.operator_email + "x"]
    )
    assert refused.exit_code == 1 and "not found" in refused.output
