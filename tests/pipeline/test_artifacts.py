"""Artifact checks on real face video with defects put in on purpose: each defect trips its own check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.checks import artifact_metrics as metrics
from pipeline.checks.artifacts import ArtifactThresholds, ExpectedFormat, check_artifacts
from pipeline.faces.portrait import crop_driving, prepare_portrait
from pipeline.images import load_image
from tests.fixtures.media import encode

SIZE = 128


@dataclass(frozen=True)
class Clean:
    source: np.ndarray
    frames: list[np.ndarray]
    path: Path


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, talking_clip: Path, portrait_path: Path) -> Clean:
    """The real clip's face crops (what a perfect animation would look like) and the portrait crop."""
    source = prepare_portrait(load_image(portrait_path, max_pixels=10**8), size=SIZE).crop
    frames = list(crop_driving(talking_clip, size=SIZE, max_missing_ratio=0.1))
    path = encode(tmp_path_factory.mktemp("artifacts") / "clean.mp4", frames)
    return Clean(source=source, frames=frames, path=path)


def test_a_clean_clip_passes_every_check(clean: Clean) -> None:
    report = check_artifacts(clean.source, clean.path, thresholds=ArtifactThresholds())
    assert report.failed == [] and report.passed
    assert report.frames == 50
    assert report.checks["face_present"].score == 0.0
    assert report.checks["sharpness"].score > 0.6
    assert report.checks["flicker"].score == 0.0
    assert report.checks["frozen"].score < 8
    assert report.checks["colour_drift"].score < 6.0
    scores = report.scores()
    assert scores["duration_ok"] and scores["fps_ok"] and scores["size_ok"]
    assert set(report.audit_details()["checks"]) == {
        "face_present",
        "sharpness",
        "flicker",
        "frozen",
        "colour_drift",
        "size",
        "fps",
        "duration",
    }


def test_frozen_frames(clean: Clean, tmp_path: Path) -> None:
    frames = clean.frames[:10] + [clean.frames[10]] * 20 + clean.frames[30:]
    report = check_artifacts(clean.source, encode(tmp_path / "frozen.mp4", frames))
    assert report.checks["frozen"].score == 19 and "frozen" in report.failed
    # The cut out of the freeze (frame 29 -> 30 jumps 20 frames ahead) is the only possible flicker outlier.
    assert set(report.checks["flicker"].detail["outlier_transitions"]) <= {29}


def test_flicker(clean: Clean, tmp_path: Path) -> None:
    frames = [
        np.clip(f.astype(int) + (70 if i in (12, 30) else 0), 0, 255).astype(np.uint8)
        for i, f in enumerate(clean.frames)
    ]
    report = check_artifacts(clean.source, encode(tmp_path / "flicker.mp4", frames))
    flicker = report.checks["flicker"]
    assert flicker.detail["outlier_transitions"] == [11, 12, 29, 30]  # into and out of each bright frame
    assert flicker.score == pytest.approx(4 / 49) and not flicker.ok


def test_blur(clean: Clean, tmp_path: Path) -> None:
    frames = [cv2.GaussianBlur(f, (0, 0), 3) for f in clean.frames]
    report = check_artifacts(clean.source, encode(tmp_path / "blur.mp4", frames))
    assert report.checks["sharpness"].score < 0.3 and "sharpness" in report.failed


def test_colour_drift(clean: Clean, tmp_path: Path) -> None:
    tint = np.array([1.0, 0.75, 0.55])
    frames = [np.clip(f * tint + [30, 0, 0], 0, 255).astype(np.uint8) for f in clean.frames]
    report = check_artifacts(clean.source, encode(tmp_path / "tint.mp4", frames))
    assert report.checks["colour_drift"].score > 6.0 and "colour_drift" in report.failed
    assert "face_present" not in report.failed


def test_faces_missing(clean: Clean, tmp_path: Path) -> None:
    frames = [f if i < 25 else np.full_like(f, 120) for i, f in enumerate(clean.frames)]
    report = check_artifacts(clean.source, encode(tmp_path / "gone.mp4", frames), sample_every=5)
    face = report.checks["face_present"]
    assert face.detail["faceless_frames"] == [25, 30, 35, 40, 45] and face.score == pytest.approx(0.5)


def test_format_against_expectations(clean: Clean) -> None:
    right = ExpectedFormat(width=SIZE, height=SIZE, fps=25.0, frame_count=50)
    assert check_artifacts(clean.source, clean.path, expected=right).failed == []
    wrong = ExpectedFormat(width=256, height=256, fps=30.0, frame_count=60)
    report = check_artifacts(clean.source, clean.path, expected=wrong)
    assert set(report.failed) == {"size", "fps", "duration"}
    assert report.scores()["size_ok"] is False and report.checks["duration"].detail["decoded_frames"] == 50


def test_thresholds_come_from_any_object_with_the_same_names(clean: Clean) -> None:
    @dataclass
    class PolicyNumbers:  # the shape of governance's CheckThresholds, with extra fields
        binding_max_distance: float = 0.055
        max_missing_face_ratio: float = 0.02
        min_sharpness_ratio: float = 50.0  # impossible to meet
        max_flicker_outlier_ratio: float = 0.02
        max_frozen_run: int = 0
        max_colour_drift: float = 6.0

    report = check_artifacts(clean.source, clean.path, thresholds=PolicyNumbers())
    assert report.checks["sharpness"].threshold == 50.0 and "sharpness" in report.failed
    assert report.checks["frozen"].threshold == 0.0


def test_metric_helpers() -> None:
    assert metrics.longest_frozen_run([1.0, 0.0, 0.0, 2.0, 0.0]) == 2
    assert metrics.longest_frozen_run([]) == 0
    assert metrics.flicker_outliers([1.0, 1.2, 0.9, 30.0, 1.1]) == [3]
    assert metrics.flicker_outliers([0.1, 0.2, 0.3, 0.2]) == []  # tiny jumps are never outliers
    flat = np.full((32, 32, 3), 100, np.uint8)
    assert metrics.histogram_distance(metrics.lab_histograms(flat), metrics.lab_histograms(flat)) == 0.0
    brighter = np.full((32, 32, 3), 140, np.uint8)
    lightness = metrics.histogram_distance(metrics.lab_histograms(flat), metrics.lab_histograms(brighter))
    assert 3.0 < lightness < 8.0  # ~15 L* units on one of three channels
