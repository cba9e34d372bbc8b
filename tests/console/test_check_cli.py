"""`likeness check` end to end on real media: the JSON shape, the verdicts, the one-line bad-input errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from console.cli.app import main
from governance.policy import DEFAULT_POLICY_PATH
from tests.fixtures.media import encode
from tests.governance.helpers import MOTION_SCORES

ROOT = Path(__file__).resolve().parents[2]
MOTION = set(MOTION_SCORES)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m console.cli.app ...` in a child process (the environment, PYTHONPATH included, is inherited)."""
    return subprocess.run(
        [sys.executable, "-m", "console.cli.app", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        timeout=900,
    )


@pytest.fixture(scope="module")
def frozen_output(tmp_path_factory: pytest.TempPathFactory, portrait_path: Path) -> Path:
    """The portrait held still for the clip's 2 s: no motion at all."""
    still = np.asarray(Image.open(portrait_path).convert("RGB"))
    return encode(tmp_path_factory.mktemp("check") / "frozen.mp4", [still] * 50)


def test_check_json_on_the_driving_clip_itself(talking_clip: Path, portrait_path: Path) -> None:
    done = run_cli(
        "check",
        str(talking_clip),
        "--portrait",
        str(portrait_path),
        "--driving",
        str(talking_clip),
        "--reference",
        str(portrait_path),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"checks", "outcome", "policy_version", "versions"}
    assert report["policy_version"] == "default@v2"
    rows = {row["name"]: row for row in report["checks"]}
    assert all(set(row) == {"name", "score", "verdict", "bound"} for row in report["checks"])
    assert MOTION | {"binding_distance", "fidelity_mean_distance", "sharpness_ratio", "leak_margin"} <= set(
        rows
    )
    assert {rows[name]["verdict"] for name in MOTION} == {"ok"}  # perfect motion
    # the crops the model would see vs the full frames: the same motion, seen through resampling noise
    assert rows["motion_mean_distance"]["score"] < 0.025
    assert rows["leak_margin"]["verdict"] == "skipped"  # the driver is the portrait's person
    assert rows["binding_distance"]["verdict"] == "ok" and rows["binding_distance"]["score"] == pytest.approx(
        0, abs=1e-6
    )
    assert report["outcome"] in {"auto_approve", "needs_review", "reject"}
    versions = report["versions"]
    assert versions["landmark_model"]["file"] == "shape_predictor_68_face_landmarks.dat"
    assert len(versions["landmark_model"]["sha256"]) == 64 and versions["deepface"] == "0.0.103"
    assert len(versions["policy_digest"]) == 64


def test_check_table_flags_a_frozen_output_without_importing_torch(
    frozen_output: Path, talking_clip: Path, portrait_path: Path
) -> None:
    # The command alone, on a bare app: `console.cli.app` imports other groups (train) that need torch.
    script = (
        "import sys, typer\n"
        "from console.cli import check\n"
        "app = typer.Typer()\n"
        "check.register(app)\n"
        "@app.callback()\n"
        "def root() -> None: pass\n"
        "code = typer.main.get_command(app).main(args=sys.argv[1:], standalone_mode=False)\n"
        "print('TORCH LOADED' if 'torch' in sys.modules else 'no torch', file=sys.stderr)\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "check",
            str(frozen_output),
            "--portrait",
            str(portrait_path),
            "--driving",
            str(talking_clip),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    assert "no torch" in done.stderr
    cells = {row[0]: row for row in (table_cells(line) for line in done.stdout.splitlines()) if row}
    assert cells["mouth_correlation"][2] == "reject", cells["mouth_correlation"]  # a still mouth: 0.0
    assert cells["binding_distance"][1:3] == ["-", "skipped"]
    outcome = next(line for line in done.stdout.splitlines() if line.startswith("outcome:"))
    assert outcome.startswith(("outcome: needs_review", "outcome: reject")) and "default@v2" in outcome


def table_cells(line: str) -> list[str]:
    """The cells of one row of rich's table ("│ a │ b │"), or [] for borders and other lines."""
    if "│" not in line and "┃" not in line:
        return []
    return [cell.strip() for cell in line.strip().strip("│┃").split("│")]


def error_line(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(["check", *args])
    captured = capsys.readouterr()
    assert code == 1, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert captured.out == ""
    return lines[0]


def test_check_bad_inputs_are_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    talking_clip: Path,
    portrait_path: Path,
    bad_media: object,
) -> None:
    missing = tmp_path / "nope.mp4"
    assert error_line(
        capsys, str(missing), "--portrait", str(portrait_path), "--driving", str(talking_clip)
    ) == (f"error: output file not found: {missing}")
    assert error_line(
        capsys, str(talking_clip), "--portrait", str(portrait_path), "--driving", str(missing)
    ) == (f"error: driving file not found: {missing}")
    text = bad_media.text_file  # type: ignore[attr-defined]
    line = error_line(capsys, str(text), "--portrait", str(portrait_path), "--driving", str(talking_clip))
    assert line.startswith("error: ") and "notes.jpg" in line
    line = error_line(capsys, str(talking_clip), "--portrait", str(text), "--driving", str(talking_clip))
    assert line.startswith("error: ") and "notes.jpg" in line
    policy = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    del policy["motion"]["yaw_correlation"]
    bad_policy = tmp_path / "policy.yaml"
    bad_policy.write_text(yaml.safe_dump(policy))
    assert error_line(
        capsys,
        str(talking_clip),
        "--portrait",
        str(portrait_path),
        "--driving",
        str(talking_clip),
        "--policy",
        str(bad_policy),
    ) == (f"error: policy {bad_policy}: field motion.yaw_correlation: Field required")
    wide = encode(tmp_path / "wide.mp4", [np.zeros((100, 300, 3), np.uint8)] * 5)
    line = error_line(capsys, str(wide), "--portrait", str(portrait_path), "--driving", str(talking_clip))
    assert line == (
        f"error: output {wide} is 300x100: neither the portrait's size (320x240) nor a square face crop"
    )
