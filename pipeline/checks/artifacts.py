"""Artifact checks on a rendered video: each gives a score and a verdict against thresholds passed in.

The checks (one streamed pass over the video, bounded memory):

* **face present** on every `sample_every`-th frame (dlib detector): share of frames without a face;
* **sharpness**: median variance of the Laplacian of sampled frames / that of the source crop;
* **flicker**: share of frame-to-frame differences that are outliers against the clip's own motion;
* **frozen runs**: the most consecutive frames that repeat the previous one;
* **colour drift**: Lab histogram distance (earth mover's, Lab units) of sampled frames vs the source;
* **format**: size, fps and duration (frame count) as expected.

Thresholds are plain numbers (`ArtifactThresholds`); the flows fill them from the governance policy,
whose `CheckThresholds` carries the same field names, so either can be passed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.checks import artifact_metrics as metrics
from pipeline.faces.detection import Detector, detect_faces
from pipeline.video.reader import VideoInfo, iter_frames, probe

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE_EVERY = 3


class ArtifactThresholds(BaseModel):
    """Where each artifact check starts to flag (the defaults match the default policy's review bounds)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    max_missing_face_ratio: float = Field(
        default=0.02, ge=0, le=1, description="share of sampled frames without a face"
    )
    min_sharpness_ratio: float = Field(default=0.6, ge=0, description="output / source variance of Laplacian")
    max_flicker_outlier_ratio: float = Field(
        default=0.02, ge=0, le=1, description="share of frame-to-frame jumps that are outliers"
    )
    max_frozen_run: int = Field(default=8, ge=0, description="most consecutive repeated frames")
    max_colour_drift: float = Field(default=6.0, ge=0, description="Lab histogram EMD vs source, Lab units")
    fps_tolerance: float = Field(default=0.01, ge=0, description="relative fps difference accepted")
    frame_tolerance: int = Field(default=1, ge=0, description="frames the count may differ by")


class ExpectedFormat(BaseModel):
    """What the output should be: size, rate and number of frames (None: not checked beyond consistency)."""

    model_config = ConfigDict(frozen=True)

    width: int
    height: int
    fps: float | None = None
    frame_count: int | None = None


class CheckResult(BaseModel):
    """One check: its score, the bound it was held to, and whether it passed."""

    model_config = ConfigDict(frozen=True)

    score: float
    threshold: float
    ok: bool
    detail: dict[str, Any] = Field(default_factory=dict)


class ArtifactReport(BaseModel):
    """All artifact checks of one video."""

    model_config = ConfigDict(frozen=True)

    checks: dict[str, CheckResult]
    frames: int
    sample_every: int

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(check.ok for check in self.checks.values())

    @property
    def failed(self) -> list[str]:
        """Names of the checks that failed."""
        return [name for name, check in self.checks.items() if not check.ok]

    def scores(self) -> dict[str, float | int | bool]:
        """The artifact part of the policy's `CheckScores` (face presence comes from the identity check)."""
        c = self.checks
        return {
            "sharpness_ratio": c["sharpness"].score,
            "flicker_outlier_ratio": c["flicker"].score,
            "longest_frozen_run": int(c["frozen"].score),
            "colour_drift": c["colour_drift"].score,
            "duration_ok": c["duration"].ok,
            "fps_ok": c["fps"].ok,
            "size_ok": c["size"].ok,
        }

    def audit_details(self) -> dict[str, Any]:
        """Plain data for the audit log."""
        return {
            "frames": self.frames,
            "sample_every": self.sample_every,
            "failed": self.failed,
            "checks": {name: check.model_dump() for name, check in self.checks.items()},
        }


class _Tally:
    """Running measurements over the streamed frames."""

    def __init__(self, source: np.ndarray, every: int, detector: Detector) -> None:
        self.source = source
        self.every, self.detector = every, detector
        self.count = 0
        self.jumps: list[float] = []
        self.sharpness: list[float] = []
        self.drift: list[float] = []
        self.faceless: list[int] = []
        self.sampled = 0
        self._previous: np.ndarray | None = None
        self._source_hist = metrics.lab_histograms(source)

    def add(self, frame: np.ndarray) -> None:
        thumb = metrics.thumbnail(frame)
        if self._previous is not None:
            self.jumps.append(metrics.mean_abs_difference(self._previous, thumb))
        self._previous = thumb
        if self.count % self.every == 0:
            self.sampled += 1
            same = (
                frame
                if frame.shape == self.source.shape
                else cv2.resize(frame, self.source.shape[1::-1], interpolation=cv2.INTER_AREA)
            )
            self.sharpness.append(metrics.sharpness(same))
            self.drift.append(metrics.histogram_distance(metrics.lab_histograms(frame), self._source_hist))
            if not detect_faces(frame, detector=self.detector):
                self.faceless.append(self.count)
        self.count += 1


def check_artifacts(
    source: np.ndarray,
    video_path: Path | str,
    *,
    thresholds: ArtifactThresholds | object | None = None,
    expected: ExpectedFormat | None = None,
    sample_every: int = DEFAULT_SAMPLE_EVERY,
    detector: Detector = "dlib",
) -> ArtifactReport:
    """Run every artifact check on a rendered video against the source crop it was animated from.

    Args:
        source: the (S, S, 3) uint8 RGB source crop.
        video_path: the rendered video.
        thresholds: `ArtifactThresholds`, or any object with the same attribute names (the policy's
            `CheckThresholds`); None uses the defaults.
        expected: the expected format; None expects the source's size and checks that rate, frame count
            and duration agree with each other.
        sample_every: run the per-frame checks (face, sharpness, colour) on every k-th frame.
    """
    if sample_every < 1:
        raise ValueError(f"sample_every must be >= 1, got {sample_every}")
    limits = _thresholds(thresholds)
    info = probe(video_path)
    tally = _Tally(source, sample_every, detector)
    for frame in iter_frames(video_path, info=info):
        tally.add(frame)
    source_sharpness = metrics.sharpness(source)
    checks = {
        "face_present": _upper(
            len(tally.faceless) / max(tally.sampled, 1),
            limits.max_missing_face_ratio,
            faceless_frames=tally.faceless,
            sampled=tally.sampled,
        ),
        "sharpness": _lower(
            float(np.median(tally.sharpness)) / max(source_sharpness, 1e-6),
            limits.min_sharpness_ratio,
            source=round(source_sharpness, 2),
        ),
        **_temporal(tally.jumps, limits),
        "colour_drift": _upper(
            float(np.mean(tally.drift)), limits.max_colour_drift, worst=round(float(np.max(tally.drift)), 3)
        ),
        **_format(info, tally.count, expected or _default_expected(source), limits),
    }
    report = ArtifactReport(checks=checks, frames=tally.count, sample_every=sample_every)
    logger.debug("artifact checks on %s: failed %s", video_path, report.failed)
    return report


def _thresholds(given: ArtifactThresholds | object | None) -> ArtifactThresholds:
    if given is None:
        return ArtifactThresholds()
    if isinstance(given, ArtifactThresholds):
        return given
    return ArtifactThresholds.model_validate(given, from_attributes=True)


def _upper(score: float, bound: float, **detail: Any) -> CheckResult:
    return CheckResult(score=score, threshold=bound, ok=score <= bound, detail=detail)


def _lower(score: float, bound: float, **detail: Any) -> CheckResult:
    return CheckResult(score=score, threshold=bound, ok=score >= bound, detail=detail)


def _temporal(jumps: list[float], limits: ArtifactThresholds) -> dict[str, CheckResult]:
    outliers = metrics.flicker_outliers(jumps)
    return {
        "flicker": _upper(
            len(outliers) / max(len(jumps), 1),
            limits.max_flicker_outlier_ratio,
            outlier_transitions=outliers[:50],
        ),
        "frozen": _upper(float(metrics.longest_frozen_run(jumps)), float(limits.max_frozen_run)),
    }


def _default_expected(source: np.ndarray) -> ExpectedFormat:
    return ExpectedFormat(width=int(source.shape[1]), height=int(source.shape[0]))


def _format(
    info: VideoInfo, decoded: int, expected: ExpectedFormat, limits: ArtifactThresholds
) -> dict[str, CheckResult]:
    """Size, fps and duration; with no expected fps/count, the file must at least agree with itself."""
    size_ok = (info.width, info.height) == (expected.width, expected.height)
    fps_error = abs(info.fps - expected.fps) / expected.fps if expected.fps else 0.0
    want = expected.frame_count if expected.frame_count is not None else info.frame_count
    implied = round(info.duration * info.fps)
    frame_error = max(abs(decoded - want), abs(implied - want))
    return {
        "size": CheckResult(
            score=float(info.width * info.height),
            threshold=float(expected.width * expected.height),
            ok=size_ok,
            detail={"size": [info.width, info.height], "expected": [expected.width, expected.height]},
        ),
        "fps": _upper(fps_error, limits.fps_tolerance, fps=info.fps, expected=expected.fps),
        "duration": _upper(
            float(frame_error),
            float(limits.frame_tolerance),
            decoded_frames=decoded,
            expected_frames=want,
            duration=info.duration,
        ),
    }
