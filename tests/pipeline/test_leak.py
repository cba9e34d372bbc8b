"""Driver identity leak on real faces: an output that became the driver is flagged, a faithful one is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from governance.policy import load_policy
from pipeline.checks.identity import IdentityVerifier
from pipeline.checks.leak import check_leak, spread
from pipeline.faces.portrait import NoFaceError, prepare_portrait
from pipeline.images import load_image
from tests.governance.helpers import good_scores

LIMIT = 40_000_000


@pytest.fixture(scope="module")
def verifier() -> IdentityVerifier:
    return IdentityVerifier(threshold=0.055)


def leak_verdict(scores: dict[str, float | None]) -> str:
    [verdict] = [v for v in load_policy().verdicts(good_scores(**scores)) if v.name == "leak_margin"]
    return verdict.verdict


def test_spread_picks_evenly_spaced_frames() -> None:
    assert spread(50, 8) == [0, 7, 14, 21, 28, 35, 42, 49]
    assert spread(3, 8) == [0, 1, 2]
    assert spread(0, 8) == []


def test_an_output_that_is_the_driver_is_flagged(
    verifier: IdentityVerifier, talking_frames: list[np.ndarray], other_person_portrait: Path
) -> None:
    grace = load_image(other_person_portrait, max_pixels=LIMIT)
    frames = talking_frames
    report = check_leak(verifier, grace, iter(frames), len(frames), iter(frames), len(frames))
    assert report.driver_portrait_distance > 0.1  # another person drove
    assert report.leak_margin is not None and report.leak_margin < 0
    assert leak_verdict(report.scores()) == "reject"
    details = report.audit_details()
    assert details["model"] == "Dlib" and len(details["to_driver"]) == len(details["output_frames"]) == 8


def test_an_output_that_stays_the_portrait_is_not_flagged(
    verifier: IdentityVerifier, talking_frames: list[np.ndarray], other_person_portrait: Path
) -> None:
    grace = load_image(other_person_portrait, max_pixels=LIMIT)
    still = [prepare_portrait(grace, size=256).crop] * 20
    report = check_leak(verifier, grace, iter(talking_frames), len(talking_frames), iter(still), len(still))
    assert report.leak_margin is not None and report.leak_margin > 0.08
    assert leak_verdict(report.scores()) == "ok"


def test_the_driver_being_the_subject_skips_the_margin(
    verifier: IdentityVerifier, talking_frames: list[np.ndarray], portrait_path: Path
) -> None:
    speaker = load_image(portrait_path, max_pixels=LIMIT)
    report = check_leak(
        verifier,
        speaker,
        iter(talking_frames),
        len(talking_frames),
        iter(talking_frames),
        len(talking_frames),
    )
    assert report.driver_portrait_distance < 0.055
    assert leak_verdict(report.scores()) == "skipped"


def test_a_faceless_output_is_not_measured_and_goes_to_review(
    verifier: IdentityVerifier, talking_frames: list[np.ndarray], other_person_portrait: Path
) -> None:
    grace = load_image(other_person_portrait, max_pixels=LIMIT)
    grey = [np.full((256, 256, 3), 128, np.uint8)] * 10
    report = check_leak(verifier, grace, iter(talking_frames), len(talking_frames), iter(grey), len(grey))
    assert report.leak_margin is None and report.to_driver == [None] * 8
    assert leak_verdict(report.scores()) == "review"


def test_a_faceless_driver_is_refused(verifier: IdentityVerifier, talking_frames: list[np.ndarray]) -> None:
    grey = [np.full((240, 320, 3), 128, np.uint8)] * 10
    with pytest.raises(NoFaceError, match="no face found in the sampled driving frames"):
        check_leak(
            verifier, talking_frames[0], iter(grey), len(grey), iter(talking_frames), len(talking_frames)
        )
