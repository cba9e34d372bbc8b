"""`likeness train prepare|run|eval|export` end to end on a tiny model: exit codes, one-line errors, files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from console.cli import app
from models.loading import file_sha256, load_mcnet

CLIP = Path(__file__).resolve().parents[2] / ".." / "shared" / "media" / "talking_man_320x240_15s.mov"
runner = CliRunner()


def _flat(output: str) -> str:
    """Rich wraps long lines at the terminal width; compare text with whitespace runs collapsed."""
    return " ".join(output.split())


def _error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def test_prepare_of_an_empty_folder_fails_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["train", "prepare", str(tmp_path / "empty"), "--out", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert _error_line(result.output).startswith("error: no videos or frame folders found in ")
    assert not (tmp_path / "data").exists()


def test_run_on_an_unreadable_video_fails_and_leaves_no_run(tmp_path: Path) -> None:
    bad = tmp_path / "clip.mov"
    bad.write_bytes(b"\x00" * 4096)
    args = ["train", "run", str(bad), "--out", str(tmp_path / "run"), "--config", "tiny", "--steps", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert _error_line(result.output).startswith("error: cannot decode video clip.mov: ")
    assert not (tmp_path / "run").exists()


def test_unknown_config_fails_with_one_line(tmp_path: Path) -> None:
    args = ["train", "run", str(CLIP), "--out", str(tmp_path / "run"), "--config", "huge", "--steps", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "config 'huge' is neither a preset (vox256, tiny, demo128) nor a file" in _error_line(result.output)


def test_run_eval_and_export_a_tiny_model(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    torch_threads = torch.get_num_threads()
    data, run = tmp_path / "data", tmp_path / "run"
    try:
        prepared = runner.invoke(
            app, ["train", "prepare", str(CLIP), "--out", str(data), "--size", "64", "--max-frames", "40"]
        )
        assert prepared.exit_code == 0, prepared.output
        assert "2 clip(s)" in prepared.output and "32 training and 8 held-out frames" in _flat(prepared.output)
        with caplog.at_level(logging.WARNING):
            trained = runner.invoke(
                app,
                ["train", "run", str(data), "--out", str(run), "--config", "tiny", "--steps", "3",
                 "--batch-size", "2", "--threads", "1", "--device", "cpu"],
            )
        assert trained.exit_code == 0, trained.output
        assert "falls back to a multi-scale L1 loss" in caplog.text
        assert "trained to step 3 (l1 reconstruction loss)" in _flat(trained.output)
        assert "copy the source frame" in trained.output
        last = run / "last.pth.tar"
        assert file_sha256(last) in _flat(trained.output)
        assert len((run / "history.jsonl").read_text().splitlines()) == 3

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
