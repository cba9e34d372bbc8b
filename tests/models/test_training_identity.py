"""AED and the cross-identity score of the shipped demo model on the shipped clip, beside their baselines,
and through `likeness train eval --identity`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from console.cli import app
from pipeline.training_frames import prepare_training_data

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL = ROOT / "flows" / "demo_assets" / "mcnet_demo128.pth.tar"
DEMO_CLIP = ROOT / "flows" / "demo_assets" / "talking_man_192.mp4"
OTHER = ROOT / ".." / "shared" / "media" / "talking_man_320x240_15s.mov"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("identity") / "data"
    prepare_training_data([DEMO_CLIP, OTHER], out, size=128, heldout_fraction=0.2, max_frames=100, crop="center")
    return out


def test_aed_and_cross_identity_of_the_demo_model_through_the_cli(data: Path) -> None:
    result = CliRunner().invoke(app, ["train", "eval", str(DEMO_MODEL), str(data), "--per-clip", "4", "--identity",
                                      "--json", "--device", "cpu"], env={"COLUMNS": "200"})
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
