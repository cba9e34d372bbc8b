"""Driving video: track the face, smooth its box over time, crop every frame the same way.

Pass one streams the video once and detects the face on every `detect_every`-th frame (on a copy
scaled down to at most `DETECT_MAX_SIDE` px), keeping only boxes: memory does not grow with the frames.
Frames where detection ran and found nothing are reported as missing; past `max_missing_ratio` the
video is refused before any rendering starts. Boxes between detections (and at missing frames) are
interpolated, the centre is smoothed with a moving average over `smooth_seconds`, and the crop side
is the clip's median face size, so the crop neither jitters nor pumps. Iterating a `DrivingCrops`
streams the video a second time and yields the crops.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pipeline.faces.detection import (
    DEFAULT_MIN_CONFIDENCE,
    Detector,
    FaceBox,
    NoFaceError,
    TooManyMissingFacesError,
    detect_faces,
)
from pipeline.faces.geometry import DEFAULT_LIFT, DEFAULT_SCALE, CropBox, cut, square_around
from pipeline.video.reader import VideoInfo, iter_frames, probe

logger = logging.getLogger(__name__)

DETECT_MAX_SIDE = 480
DEFAULT_DETECT_EVERY = 2
DEFAULT_SMOOTH_SECONDS = 0.3


@dataclass(frozen=True)
class DrivingReport:
    """What tracking found: which sampled frames had no face, and the crop geometry per frame."""

    frame_count: int
    sampled_frames: int
    missing_frames: list[int]
    boxes: list[CropBox] = field(repr=False)

    @property
    def missing_ratio(self) -> float:
        """Share of the sampled frames without a face."""
        return len(self.missing_frames) / self.sampled_frames if self.sampled_frames else 1.0

    def as_dict(self) -> dict[str, object]:
        """Plain numbers for audit records (the per-frame boxes are left out)."""
        return {
            "frame_count": self.frame_count,
            "sampled_frames": self.sampled_frames,
            "missing_frames": self.missing_frames,
            "missing_ratio": round(self.missing_ratio, 4),
            "crop_side_px": self.boxes[0].side if self.boxes else 0,
        }


@dataclass(frozen=True)
class DrivingCrops:
    """The driving video's face crops, streamed on each iteration; `report` says how tracking went."""

    path: Path
    info: VideoInfo
    size: int
    report: DrivingReport

    def __iter__(self) -> Iterator[np.ndarray]:
        boxes = self.report.boxes
        for index, frame in enumerate(iter_frames(self.path, info=self.info)):
            yield cut(frame, boxes[min(index, len(boxes) - 1)], self.size)

    def __len__(self) -> int:
        return self.report.frame_count


def crop_driving(
    path: Path | str,
    *,
    size: int,
    max_missing_ratio: float,
    detector: Detector = "dlib",
    detect_every: int = DEFAULT_DETECT_EVERY,
    smooth_seconds: float = DEFAULT_SMOOTH_SECONDS,
    scale: float = DEFAULT_SCALE,
    lift: float = DEFAULT_LIFT,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> DrivingCrops:
    """Track the face through a driving video and plan a consistent crop for every frame.

    Raises:
        NoFaceError: no frame shows a face.
        TooManyMissingFacesError: more than `max_missing_ratio` of the sampled frames show none.
        pipeline.video.reader errors: the video cannot be read.
    """
    if detect_every < 1:
        raise ValueError(f"detect_every must be >= 1, got {detect_every}")
    target = Path(path)
    info = probe(target)
    detections: dict[int, FaceBox] = {}
    sampled: list[int] = []
    previous: FaceBox | None = None
    count = 0
    for index, frame in enumerate(iter_frames(target, info=info)):
        count = index + 1
        if index % detect_every:
            continue
        sampled.append(index)
        face = _track(frame, previous, detector=detector, min_confidence=min_confidence)
        if face is not None:
            detections[index] = previous = face
    missing = [index for index in sampled if index not in detections]
    if not detections:
        raise NoFaceError(
            f"no face found in any of {len(sampled)} sampled frames of driving video {target.name}",
            faces_found=0,
            sampled_frames=len(sampled),
        )
    ratio = len(missing) / len(sampled)
    if ratio > max_missing_ratio:
        raise TooManyMissingFacesError(
            f"driving video {target.name}: {len(missing)} of {len(sampled)} sampled frames show no face "
            f"({ratio:.0%} > {max_missing_ratio:.0%} allowed); first at frame {missing[0]}",
            sampled_frames=len(sampled),
            missing_frames=len(missing),
            missing_ratio=round(ratio, 4),
            max_missing_ratio=max_missing_ratio,
            first_missing_frame=missing[0],
        )
    boxes = _plan_boxes(
        detections,
        count,
        (info.width, info.height),
        fps=info.fps,
        smooth_seconds=smooth_seconds,
        scale=scale,
        lift=lift,
    )
    report = DrivingReport(
        frame_count=count, sampled_frames=len(sampled), missing_frames=missing, boxes=boxes
    )
    if missing:
        logger.info(
            "driving video %s: %d of %d sampled frames without a face", target, len(missing), len(sampled)
        )
    return DrivingCrops(path=target, info=info, size=size, report=report)


def _track(
    frame: np.ndarray, previous: FaceBox | None, *, detector: Detector, min_confidence: float
) -> FaceBox | None:
    """The face in `frame` (full-frame pixels): the one nearest the previous face, else the largest."""
    height, width = frame.shape[:2]
    factor = min(1.0, DETECT_MAX_SIDE / max(height, width))
    small = (
        frame
        if factor == 1.0
        else cv2.resize(frame, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA)
    )
    faces = [
        FaceBox(
            x=round(f.x / factor),
            y=round(f.y / factor),
            w=round(f.w / factor),
            h=round(f.h / factor),
            confidence=f.confidence,
        )
        for f in detect_faces(small, detector=detector, min_confidence=min_confidence)
    ]
    if not faces:
        return None
    if previous is None:
        return faces[0]
    px, py = previous.center
    return min(faces, key=lambda f: (f.center[0] - px) ** 2 + (f.center[1] - py) ** 2)


def _plan_boxes(
    detections: dict[int, FaceBox],
    count: int,
    image_size: tuple[int, int],
    *,
    fps: float,
    smooth_seconds: float,
    scale: float,
    lift: float,
) -> list[CropBox]:
    """One crop per frame: interpolated, smoothed centres; one side (the median face size) for all."""
    known = np.array(sorted(detections))
    frames = np.arange(count)
    cx = np.interp(frames, known, [detections[i].center[0] for i in known])
    cy = np.interp(frames, known, [detections[i].center[1] for i in known])
    side = float(np.median([detections[i].side for i in known]))
    window = max(1, int(round(smooth_seconds * fps)) | 1)  # odd, centred
    cx, cy = _moving_average(cx, window), _moving_average(cy, window)
    return [
        square_around((float(x), float(y)), side, image_size, scale=scale, lift=lift)
        for x, y in zip(cx, cy, strict=True)
    ]


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average with edge padding (no shrinking towards zero at the ends)."""
    if window <= 1 or len(values) < 2:
        return values
    half = window // 2
    padded = np.pad(values, half, mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")
