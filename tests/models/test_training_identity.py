"""AED, AKD and the cross-identity score (identity and motion) of the shipped demo model on the shipped clip, beside their baselines,
and through `likeness train eval --identity`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from console.cli.app import app
from pipeline.training.frames import prepare_training_data

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL = ROOT / "flows" / "demo" / "assets" / "mcnet_demo128.pth.tar"
DEMO_CLIP = ROOT / "flows" / "demo" / "assets" / "talking_man_192.mp4"
OTHER = ROOT / ".." / "shared" / "media" / "talking_man_320x240_15s.mov"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("identity") / "data"
    prepare_training_data(
        [DEMO_CLIP, OTHER], out, size=128, heldout_fraction=0.2, max_frames=100, crop="center"
    )
    return out


def test_aed_and_cross_identity_of_the_demo_model_through_the_cli(data: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "train",
            "eval",
            str(DEMO_MODEL),
            str(data),
            "--per-clip",
            "4",
            "--identity",
            "--json",
            "--device",
            "cpu",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    scores = report["identity"]
    print("identity scores:", scores)  # noqa: T201 - the numbers docs/training.md quotes
    assert report["frames"] == 2 * 4
    assert scores["frames"] == 2 * 4 + 2 * 4 and scores["missing"] <= 2
    assert all(math.isfinite(scores[name]) for name in ("aed_model", "aed_copy_source"))
    # Same person throughout: the reconstruction keeps the identity about as well as copying the source.
    assert scores["aed_model"] < 0.1 and scores["aed_copy_source"] < 0.1
    assert scores["cross_copy_source"] == 0.0 and scores["cross_copy_driver"] is not None
    assert 0 <= scores["cross_model"] < 1
    # AKD in pixels of the 128 px model: the real frame against itself is 0; copying the source is not.
    assert scores["akd_frames"] >= 6
    assert math.isfinite(scores["akd_model"]) and math.isfinite(scores["akd_copy_source"])
    assert scores["akd_copy_source"] > 0.0 and 0.0 < scores["akd_model"] < 0.25 * 128
    # Cross-identity motion fidelity, beside the still portrait (copy the source).
    names = (
        "cross_motion_distance_model",
        "cross_motion_distance_copy_source",
        "cross_mouth_correlation_model",
        "cross_mouth_correlation_copy_source",
    )
    assert all(scores[name] is not None and math.isfinite(scores[name]) for name in names)
    assert scores["cross_motion_distance_model"] >= 0 and scores["cross_motion_distance_copy_source"] >= 0
    assert all(-1.0 <= scores[name] <= 1.0 for name in names[2:])
    assert scores["landmark_model"]["name"] == "dlib-68" and len(scores["landmark_model"]["sha256"]) == 64


def test_keypoint_distance_is_zero_on_the_same_landmarks_and_in_pixels() -> None:
    import numpy as np

    from flows.training import keypoint_distance

    points = np.random.default_rng(0).uniform(0, 128, size=(68, 2))
    assert keypoint_distance(points, points) == 0.0
    assert keypoint_distance(points, points + np.array([3.0, 4.0])) == pytest.approx(5.0)
