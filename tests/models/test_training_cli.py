"""`likeness train prepare|run|eval|export` end to end on a tiny model: exit codes, one-line errors, files.

`run` is governed, so those tests run on a real migrated SQLite database and the session's S3 server,
with an operator, a subject `S-1` and (unless a test says otherwise) a consent of S-1 covering model
training; the run must register its checkpoint, and refuse footage without such a consent.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from console.cli.app import app
from governance import consent, users
from governance.database import make_engine, make_session_factory
from governance.enums import ModelStatus
from governance.models_registry import find_by_sha256, lineage
from governance.schema import AuditEvent, RegisteredModel
from governance.subjects import add_subject
from governance.types import utcnow
from governance.uow import unit_of_work
from models.digest import sha256_file
from models.loading import load_mcnet
from tests.fixtures.storage import S3ServerHandle

CLIP = Path(__file__).resolve().parents[2] / ".." / "shared" / "media" / "talking_man_320x240_15s.mov"
runner = CliRunner()
OPERATOR = "operator@example.org"


@dataclass
class Governed:
    """The environment of a governed `train run` and a way into its database."""

    env: dict[str, str]
    sf: sessionmaker[Session]
    subject_id: str

    def grant(self, purposes: list[str], root: Path) -> str:
        evidence = root / "training-consent.txt"
        evidence.write_text("S-1 agrees that footage of them trains models\n", encoding="utf-8")
        digest = hashlib.sha256(evidence.read_bytes()).hexdigest()
        with unit_of_work(self.sf) as session:
            officer = users.get_user_by_email(session, "compliance@example.org").id
            return consent.grant(
                session,
                subject_id=self.subject_id,
                purposes=purposes,
                channels=["internal"],
                territories=["WORLD"],
                valid_from=utcnow() - timedelta(minutes=1),
                valid_until=None,
                evidence_path=evidence,
                evidence_sha256=digest,
                evidence_key=f"evidence/{digest}.txt",
                recorded_by=officer,
            ).id


@pytest.fixture
def governed(sqlite_db_url: str, s3_server: S3ServerHandle, tmp_path: Path) -> Iterator[Governed]:
    engine = make_engine(sqlite_db_url)
    sf = make_session_factory(engine)
    with unit_of_work(sf) as session:
        officer = users.add_user(
            session, email="compliance@example.org", roles=["compliance"], actor="system:test"
        )
        users.add_user(session, email=OPERATOR, roles=["operator"], actor="system:test")
        subject = add_subject(session, reference="S-1", display_name="Subject one", created_by=officer.id).id
    env = {
        "LIKENESS_DATABASE_URL": sqlite_db_url,
        "LIKENESS_VAR_DIR": str(tmp_path / "var"),
        **s3_server.env(),
        "LIKENESS_ACTOR": OPERATOR,
        "COLUMNS": "200",
    }
    try:
        yield Governed(env=env, sf=sf, subject_id=subject)
    finally:
        engine.dispose()


def _flat(output: str) -> str:
    """Rich wraps long lines at the terminal width; compare text with whitespace runs collapsed."""
    return " ".join(output.split())


def _error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def test_prepare_of_an_empty_folder_fails_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = runner.invoke(
        app, ["train", "prepare", str(tmp_path / "empty"), "--out", str(tmp_path / "data")]
    )
    assert result.exit_code == 1
    assert _error_line(result.output).startswith("error: no videos or frame folders found in ")
    assert not (tmp_path / "data").exists()


def test_run_on_an_unreadable_video_fails_and_leaves_no_run(tmp_path: Path, governed: Governed) -> None:
    bad = tmp_path / "clip.mov"
    bad.write_bytes(b"\x00" * 4096)
    args = [
        "train",
        "run",
        str(bad),
        "--out",
        str(tmp_path / "run"),
        "--config",
        "tiny",
        "--steps",
        "2",
        "--subject",
        "S-1",
    ]
    result = runner.invoke(app, args, env=governed.env)
    assert result.exit_code == 1
    line = _error_line(
        result.output
    )  # face tracking probes the video first (`--crop center` decodes it directly)
    assert line.startswith("error: video ") and "clip.mov cannot be read" in line
    assert not (tmp_path / "run").exists()


def test_unknown_config_fails_with_one_line(tmp_path: Path, governed: Governed) -> None:
    args = ["train", "run", str(CLIP), "--out", str(tmp_path / "run"), "--config", "huge", "--steps", "2"]
    result = runner.invoke(app, args, env=governed.env)
    assert result.exit_code == 1
    assert "config 'huge' is neither a preset (vox256, tiny, demo128) nor a file" in _error_line(
        result.output
    )


def test_run_eval_and_export_a_tiny_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, governed: Governed
) -> None:
    torch_threads = torch.get_num_threads()
    data, run = tmp_path / "data", tmp_path / "run"
    training_consent = governed.grant(["model_training"], tmp_path)
    try:
        prepared = runner.invoke(
            app,
            [
                "train",
                "prepare",
                str(CLIP),
                "--out",
                str(data),
                "--size",
                "64",
                "--max-frames",
                "40",
                "--subject",
                "S-1",
            ],
        )
        assert prepared.exit_code == 0, prepared.output
        assert "2 clip(s)" in prepared.output and "32 training and 8 held-out frames" in _flat(
            prepared.output
        )
        with caplog.at_level(logging.WARNING):
            trained = runner.invoke(
                app,
                [
                    "train",
                    "run",
                    str(data),
                    "--out",
                    str(run),
                    "--config",
                    "tiny",
                    "--steps",
                    "3",
                    "--batch-size",
                    "2",
                    "--threads",
                    "1",
                    "--device",
                    "cpu",
                    "--name",
                    "team-tiny",
                ],
                env=governed.env,
            )
        assert trained.exit_code == 0, trained.output
        assert "falls back to a multi-scale L1 loss" in caplog.text
        assert "trained to step 3 (l1 reconstruction loss)" in _flat(trained.output)
        assert "copy the source frame" in trained.output
        last = run / "last.pth.tar"
        assert sha256_file(last) in _flat(trained.output)
        assert len((run / "history.jsonl").read_text().splitlines()) == 3
        assert "pairs/s" in trained.output
        assert "registered model team-tiny@step3 (2 training clip(s) of 1 subject(s))" in _flat(
            trained.output
        )
        with governed.sf() as session:
            model = find_by_sha256(session, sha256_file(last))
            assert model is not None and model.status == ModelStatus.active
            rows = lineage(session, model.id)
            assert sorted(clip.split for clip, _, _ in rows) == ["heldout", "train"]
            assert {(subject.reference, used.id) for _, subject, used in rows} == {("S-1", training_consent)}
        shown = runner.invoke(app, ["model", "show", "team-tiny@step3"], env=governed.env)
        assert shown.exit_code == 0, shown.output
        assert "S-1" in shown.output and training_consent in shown.output and "in force" in shown.output

        scored = runner.invoke(app, ["train", "eval", str(last), str(data), "--json", "--device", "cpu"])
        assert scored.exit_code == 0, scored.output
        report = json.loads(scored.output)
        assert report["frames"] == 7 and set(report["model"]) == {"l1", "psnr", "ssim"}
        assert report["copy_source"]["psnr"] > 10

        wrong = runner.invoke(app, ["train", "eval", str(last), str(data), "--sha256", "0" * 64])
        assert wrong.exit_code == 1 and "sha256 mismatch" in _error_line(wrong.output)

        shipped = tmp_path / "ship.pth.tar"
        exported = runner.invoke(app, ["train", "export", str(last), str(shipped), "--storage", "float16"])
        assert exported.exit_code == 0, exported.output
        assert shipped.stat().st_size < 0.6 * last.stat().st_size  # no optimiser state, half precision
        raw = torch.load(shipped, weights_only=True)
        assert set(raw) == {"generator", "kp_detector", "config", "epoch"} and raw["epoch"] == 3
        loaded = load_mcnet(shipped)
        assert next(loaded.model.parameters()).dtype == torch.float32
    finally:
        torch.set_num_threads(torch_threads)


def test_run_refuses_footage_without_a_training_consent(tmp_path: Path, governed: Governed) -> None:
    governed.grant(["advertising"], tmp_path)  # a consent, but not for training
    args = [
        "train",
        "run",
        str(CLIP),
        "--out",
        str(tmp_path / "run"),
        "--config",
        "tiny",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--subject",
        "S-1",
        "--device",
        "cpu",
    ]
    result = runner.invoke(app, args, env=governed.env)
    assert result.exit_code == 1
    assert _error_line(result.output) == (
        f"error: training refused: no consent of subject {governed.subject_id} "
        "covers purpose 'model_training'"
    )
    assert not (tmp_path / "run" / "last.pth.tar").exists()  # refused before the first step
    with governed.sf() as session:
        assert session.scalars(select(RegisteredModel)).all() == []
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert (
            last is not None and last.action == "training.refused" and last.subject_id == governed.subject_id
        )


def test_run_refuses_footage_that_names_no_subject(tmp_path: Path, governed: Governed) -> None:
    args = ["train", "run", str(CLIP), "--out", str(tmp_path / "run"), "--config", "tiny", "--steps", "2"]
    result = runner.invoke(app, args, env=governed.env)
    assert result.exit_code == 1
    assert "names no subject: prepare the footage with --subject REFERENCE" in _error_line(result.output)


def test_run_needs_an_actor(tmp_path: Path, governed: Governed) -> None:
    env = {**governed.env, "LIKENESS_ACTOR": ""}
    args = ["train", "run", str(CLIP), "--out", str(tmp_path / "run"), "--config", "tiny", "--subject", "S-1"]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 1 and "training is governed: say who acts with --actor" in _error_line(
        result.output
    )
    assert not (tmp_path / "run").exists()


def test_run_on_two_processes_registers_its_model(tmp_path: Path, governed: Governed) -> None:
    governed.grant(["model_training"], tmp_path)
    run = tmp_path / "run"
    args = [
        "train",
        "run",
        str(CLIP),
        "--out",
        str(run),
        "--config",
        "tiny",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--nproc",
        "2",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--subject",
        "S-1",
        "--version",
        "ddp",
    ]
    trained = runner.invoke(app, args, env=governed.env)
    assert trained.exit_code == 0, trained.output
    assert "registered model run@ddp" in _flat(trained.output)
    assert (run / "distributed-result.json").is_file()
    with governed.sf() as session:
        model = find_by_sha256(session, sha256_file(run / "last.pth.tar"))
        assert model is not None and model.name == "run" and len(lineage(session, model.id)) == 2
