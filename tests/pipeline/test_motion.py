"""Motion fidelity on the real talking clip: itself passes; frozen, reversed and shifted do not.

The verdicts come from the default policy's motion rules (the calibrated bounds,
docs/motion-checks.md), so these tests also hold the policy to what the calibration promised.
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest

from governance.policy import load_policy
from pipeline.checks.motion import (
    MIN_FRAMES,
    check_motion,
    correlation,
    eye_opening,
    head_pose,
    inter_ocular,
    mouth_opening,
)
from pipeline.faces.landmarks import LandmarkDetector, predictor_path, shared_detector
from pipeline.video.reader import iter_frames
from tests.fixtures.media import TALKING_MAN
from tests.governance.helpers import good_scores

EVERY, FPS, SECONDS = 3, 25, 6


@pytest.fixture(scope="module")
def clip(shared_media: object) -> list[np.ndarray]:
    """The first 7 s of the real clip (320x240): 6 s to drive, one more second to shift by."""
    return [frame for _, frame in zip(range((SECONDS + 1) * FPS), iter_frames(TALKING_MAN), strict=False)]


@pytest.fixture(scope="module")
def detector() -> LandmarkDetector:
    return shared_detector()


def motion_verdicts(scores: dict[str, float]) -> dict[str, str]:
    """The default policy's verdict on each motion score."""
    names = set(scores)
    return {v.name: v.verdict for v in load_policy().verdicts(good_scores(**scores)) if v.name in names}


def test_the_predictor_ships_offline_and_is_recorded_with_its_sha256(detector: LandmarkDetector) -> None:
    path = predictor_path()
    assert path.name == "shape_predictor_68_face_landmarks.dat"
    assert detector.model.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert detector.model.as_dict() == {"name": "dlib-68", "file": path.name, "sha256": detector.model.sha256}


def test_landmarks_on_a_real_face_and_none_without_one(
    detector: LandmarkDetector, clip: list[np.ndarray]
) -> None:
    points = detector.landmarks(clip[0])
    assert points is not None and points.shape == (68, 2)
    assert 30 < inter_ocular(points) < 120  # a 320x240 webcam face
    assert points[36, 0] < points[30, 0] < points[45, 0]  # nose between the eyes
    assert points[30, 1] < points[8, 1]  # chin below the nose
    assert detector.landmarks(np.full((240, 320, 3), 128, np.uint8)) is None
    yaw, pitch, roll = head_pose(points, (320, 240))  # type: ignore[misc]
    assert abs(yaw) < 30 and abs(roll) < 20  # roughly frontal


def test_openings_follow_the_landmark_geometry() -> None:
    points = np.zeros((68, 2))
    points[60], points[64] = (0, 0), (40, 0)  # inner mouth corners, 40 px apart
    for top, bottom in ((61, 67), (62, 66), (63, 65)):
        points[top], points[bottom] = (10, -5), (10, 5)  # 10 px open
    assert mouth_opening(points) == pytest.approx(0.25)
    for eye in (range(36, 42), range(42, 48)):
        p = list(eye)
        points[p[0]], points[p[3]] = (0, 0), (30, 0)
        points[p[1]], points[p[5]] = (10, -3), (10, 3)
        points[p[2]], points[p[4]] = (20, -3), (20, 3)
    assert eye_opening(points) == pytest.approx(0.2)


def test_correlation_is_neutral_for_a_still_driver_and_zero_for_a_still_output() -> None:
    moving = np.sin(np.linspace(0, 6, 40))
    assert correlation(moving, moving, 0.01) == pytest.approx(1.0)
    assert correlation(moving, -moving, 0.01) == pytest.approx(-1.0)
    assert correlation(moving, np.zeros(40), 0.01) == 0.0
    assert correlation(np.full(40, 0.3), moving, 0.01) == 1.0


def test_the_driving_clip_against_itself_is_ok(detector: LandmarkDetector, clip: list[np.ndarray]) -> None:
    driving = clip[: SECONDS * FPS]
    report = check_motion(detector, iter(driving), iter(driving), every=EVERY)
    scores = report.scores()
    assert scores["motion_mean_distance"] == 0.0 and scores["mouth_correlation"] == 1.0
    assert set(motion_verdicts(scores).values()) == {"ok"}
    assert report.frame_indices == list(range(0, SECONDS * FPS, EVERY))
    details = report.audit_details()
    assert details["landmark_model"]["sha256"] == detector.model.sha256
    assert len(details["series"]["mouth"]["driving"]) == len(report.frame_indices)


@pytest.mark.parametrize("variant", ["frozen", "reversed", "shifted"])
def test_frozen_reversed_and_shifted_outputs_are_not_ok(
    detector: LandmarkDetector, clip: list[np.ndarray], variant: str
) -> None:
    frames = SECONDS * FPS
    driving = clip[:frames]
    output = {"frozen": [clip[10]] * frames, "reversed": driving[::-1], "shifted": clip[FPS : FPS + frames]}[
        variant
    ]
    scores = check_motion(detector, iter(driving), iter(output), every=EVERY).scores()
    verdicts = motion_verdicts(scores)
    flagged = {name for name, verdict in verdicts.items() if verdict != "ok"}
    assert flagged, (variant, scores)
    assert "motion_mean_distance" in flagged or "mouth_correlation" in flagged, (variant, scores)


def test_an_output_without_a_face_takes_the_worst_scores(
    detector: LandmarkDetector, clip: list[np.ndarray]
) -> None:
    grey = [np.full_like(clip[0], 128)] * 30
    report = check_motion(detector, iter(clip[:30]), iter(grey), every=EVERY)
    assert report.output_missing_ratio == 1.0 and len(report.frame_indices) < MIN_FRAMES
    verdicts = motion_verdicts(report.scores())
    assert "ok" not in verdicts.values() and verdicts["motion_mean_distance"] == "reject"


def test_one_detector_shared_by_threads_gives_the_serial_answers(clip: list[np.ndarray]) -> None:
    detector = LandmarkDetector()
    frames = clip[:40:4]
    serial = [detector.landmarks(frame) for frame in frames]
    results: dict[int, list[np.ndarray | None]] = {}

    def work(worker: int) -> None:
        results[worker] = [detector.landmarks(frame) for frame in frames]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for found in results.values():
        for a, b in zip(found, serial, strict=True):
            assert a is not None and b is not None and np.array_equal(a, b)
