"""`likeness model register|list|show|retire` through the real CLI on a migrated SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from console.cli.app import app
from governance import users
from governance.database import make_engine, make_session_factory
from governance.enums import ModelStatus
from governance.schema import AuditEvent, RegisteredModel
from governance.uow import unit_of_work
from tests.fixtures.model import TinyCheckpoint

runner = CliRunner()
OPERATOR, COMPLIANCE = "operator@example.org", "compliance@example.org"


@pytest.fixture
def env(sqlite_db_url: str, tmp_path: Path) -> dict[str, str]:
    engine = make_engine(sqlite_db_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            users.add_user(session, email=OPERATOR, roles=["operator"], actor="system:test")
            users.add_user(session, email=COMPLIANCE, roles=["compliance"], actor="system:test")
    finally:
        engine.dispose()
    return {
        "LIKENESS_DATABASE_URL": sqlite_db_url,
        "LIKENESS_VAR_DIR": str(tmp_path / "var"),
        "COLUMNS": "250",
    }


def _error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def _models(url: str) -> list[RegisteredModel]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.scalars(select(RegisteredModel)))
    finally:
        engine.dispose()


def test_register_list_show_retire(env: dict[str, str], tiny_checkpoint: TinyCheckpoint) -> None:
    args = [
        "model",
        "register",
        str(tiny_checkpoint.path),
        "--name",
        "mcnet-tiny",
        "--version",
        "1",
        "--actor",
        OPERATOR,
        "--sha256",
        tiny_checkpoint.sha256,
    ]
    done = runner.invoke(app, args, env=env)
    assert done.exit_code == 0, done.output
    assert (
        "model mcnet-tiny@1 registered" in done.output
        and "lineage unknown (trained elsewhere)" in done.output
    )
    [model] = _models(env["LIKENESS_DATABASE_URL"])
    assert (
        model.sha256 == tiny_checkpoint.sha256
        and model.config["image_size"] == tiny_checkpoint.config.image_size
    )

    again = runner.invoke(app, [*args[:6], "2", *args[7:]], env=env)
    assert again.exit_code == 1
    assert _error_line(again.output) == (
        f"error: checkpoint sha256 {tiny_checkpoint.sha256} is already registered as mcnet-tiny@1"
    )

    listed = runner.invoke(app, ["model", "list", "--actor", OPERATOR], env=env)
    assert listed.exit_code == 0 and "mcnet-tiny" in listed.output and "active" in listed.output
    shown = runner.invoke(app, ["model", "show", tiny_checkpoint.sha256, "--actor", OPERATOR], env=env)
    assert shown.exit_code == 0, shown.output
    assert "training data: not recorded" in shown.output and "publications: none" in shown.output

    denied = runner.invoke(
        app, ["model", "retire", "mcnet-tiny@1", "--reason", "x", "--actor", OPERATOR], env=env
    )
    assert denied.exit_code == 1 and "lacks role compliance or admin for model.retire" in _error_line(
        denied.output
    )
    retired = runner.invoke(
        app, ["model", "retire", "mcnet-tiny@1", "--reason", "superseded", "--actor", COMPLIANCE], env=env
    )
    assert retired.exit_code == 0, retired.output
    assert "model mcnet-tiny@1 retired" in retired.output
    [model] = _models(env["LIKENESS_DATABASE_URL"])
    assert model.status == ModelStatus.retired and model.status_reason == "superseded"
    only = runner.invoke(app, ["model", "list", "--status", "active", "--actor", OPERATOR], env=env)
    assert only.exit_code == 0 and "mcnet-tiny" not in only.output
    engine = make_engine(env["LIKENESS_DATABASE_URL"])
    try:
        with make_session_factory(engine)() as session:
            actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))
    finally:
        engine.dispose()
    assert actions[-3:] == ["model.registered", "access.denied", "model.retired"]


def test_register_refuses_a_file_that_is_not_a_checkpoint(env: dict[str, str], tmp_path: Path) -> None:
    bogus = tmp_path / "model.pth.tar"
    bogus.write_bytes(b"not a checkpoint")
    result = runner.invoke(
        app, ["model", "register", str(bogus), "--name", "m", "--version", "1", "--actor", OPERATOR], env=env
    )
    assert result.exit_code == 1
    assert "is not a readable torch checkpoint" in _error_line(result.output)
    assert _models(env["LIKENESS_DATABASE_URL"]) == []


def test_unknown_model_and_status_fail_in_one_line(env: dict[str, str]) -> None:
    shown = runner.invoke(app, ["model", "show", "nope@1", "--actor", OPERATOR], env=env)
    assert shown.exit_code == 1 and _error_line(shown.output) == "error: model nope@1 is not registered"
    listed = runner.invoke(app, ["model", "list", "--status", "broken", "--actor", OPERATOR], env=env)
    assert listed.exit_code == 1 and "unknown status 'broken'" in _error_line(listed.output)
