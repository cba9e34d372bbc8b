"""Does the output move like the driving video? Landmark motion, mouth and eyes, head pose, compared.

From 68-point landmarks (`pipeline.faces.landmarks`) of the driving crops and of the output, both sampled
at the same frame indices:

* **landmark motion** (AKD-like): each sequence's landmarks, centred per frame on their mean (the
  face's place in the picture is the crop's business, not the motion's), relative to its own first
  usable frame and divided by that frame's inter-ocular distance (outer eye corners), so the two
  faces' shapes and sizes cancel and only their motion is compared; per frame, the mean over the 68
  points of the distance between the two displacements. Scores: the mean, and the mean of the worst 5% of frames.
* **mouth opening** (inner-lip height / width) and **eye opening** (eye aspect ratio, both eyes):
  Pearson correlation and mean absolute difference of the two series. These are absolute, not
  relative: the driver's closed mouth should close the output's mouth, whatever the portrait did.
* **head pose** (yaw, pitch, roll in degrees, `cv2.solvePnP` on six landmarks against a generic 3-D
  face): correlation and mean absolute difference of the two series, each centred on its own median,
  since the portrait's resting pose is its own and only the turns should follow the driver.

A correlation needs motion to correlate: when the driver's series barely moves (std below a floor),
the correlation carries no information and is reported as 1.0 (the mean difference still judges);
when the driver moves and the output does not, it is 0.0. Frames without landmarks in either
sequence are left out; with fewer than `MIN_FRAMES` usable frames every score takes its worst value
(fail closed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict

from pipeline.checks.identity import worst_mean
from pipeline.faces.landmarks import LandmarkDetector, LandmarkModel

MIN_FRAMES = 4
# Below these standard deviations a driver series is "still" (landmark jitter on a still face is ~0.005).
STILL_STD = {"mouth": 0.02, "eyes": 0.015, "yaw": 1.0, "pitch": 1.0, "roll": 1.0}
POSE_AXES = ("yaw", "pitch", "roll")
# Fail-closed values when too few frames can be compared.
WORST = {"distance": 1.0, "correlation": -1.0, "opening_difference": 1.0, "angle_difference": 90.0}

# 68-point indices (iBUG 300-W, 0-based).
LEFT_EYE, RIGHT_EYE = list(range(36, 42)), list(range(42, 48))
INNER_LIPS = list(range(60, 68))
POSE_POINTS = [30, 8, 36, 45, 48, 54]  # nose tip, chin, outer eye corners, mouth corners
# A generic face in millimetre-like units, x right, y down, z away from the camera (nose tip nearest):
# the usual six-point approximation of an average head. Frontal face -> rotation near identity.
FACE_MODEL_3D = np.array(
    [
        (0.0, 0.0, 0.0),
        (0.0, 330.0, 65.0),
        (-225.0, -170.0, 135.0),
        (225.0, -170.0, 135.0),
        (-150.0, 150.0, 125.0),
        (150.0, 150.0, 125.0),
    ],
    dtype=np.float64,
)


def inter_ocular(points: np.ndarray) -> float:
    """Distance between the outer eye corners (36, 45), in pixels."""
    return float(np.linalg.norm(points[45] - points[36]))


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip aspect ratio: mean gap of the three inner-lip pairs / inner mouth width (0 = closed)."""
    gap = np.mean([np.linalg.norm(points[a] - points[b]) for a, b in ((61, 67), (62, 66), (63, 65))])
    width = np.linalg.norm(points[64] - points[60])
    return float(gap / max(width, 1e-6))


def eye_opening(points: np.ndarray) -> float:
    """Eye aspect ratio (Soukupova & Cech), averaged over both eyes."""
    ratios = []
    for eye in (LEFT_EYE, RIGHT_EYE):
        p = points[eye]
        vertical = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
        ratios.append(vertical / max(2.0 * float(np.linalg.norm(p[0] - p[3])), 1e-6))
    return float(np.mean(ratios))


def head_pose(points: np.ndarray, image_size: tuple[int, int]) -> tuple[float, float, float] | None:
    """(yaw, pitch, roll) in degrees from six landmarks with a pinhole camera (focal = image width)."""
    width, height = image_size
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)
    ok, rotation, _ = cv2.solvePnP(
        FACE_MODEL_3D,
        points[POSE_POINTS].astype(np.float64),
        camera,
        np.zeros(4),
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:
        return None
    matrix, _ = cv2.Rodrigues(rotation)
    angles, *_ = cv2.RQDecomp3x3(matrix)  # degrees about x (pitch), y (yaw), z (roll)
    pitch, yaw, roll = (_wrap(float(a)) for a in angles)
    return yaw, pitch, roll


def _wrap(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


class FaceTrack(BaseModel):
    """Landmarks of one video at sampled frames (None: no face found), and the frame size."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    frame_indices: list[int]
    points: list[np.ndarray | None]
    image_size: tuple[int, int]  # (width, height)

    @property
    def missing_ratio(self) -> float:
        """Share of sampled frames without landmarks."""
        return sum(p is None for p in self.points) / max(len(self.points), 1)


def track_faces(detector: LandmarkDetector, frames: Iterable[np.ndarray], *, every: int) -> FaceTrack:
    """Landmarks of every `every`-th frame of a stream of RGB frames."""
    indices: list[int] = []
    points: list[np.ndarray | None] = []
    size = (0, 0)
    for index, frame in enumerate(frames):
        if index % every:
            continue
        size = (int(frame.shape[1]), int(frame.shape[0]))
        indices.append(index)
        points.append(detector.landmarks(frame))
    if not indices:
        raise ValueError("motion check: the video has no frames")
    return FaceTrack(frame_indices=indices, points=points, image_size=size)


class MotionReport(BaseModel):
    """Driving vs output motion: the scores, the per-frame series (for the review plot) and the model."""

    model_config = ConfigDict(frozen=True)

    every: int
    frame_indices: list[int]  # the frames compared (landmarks in both)
    driving_missing_ratio: float
    output_missing_ratio: float
    motion_distances: list[float]
    series: dict[
        str, dict[str, list[float]]
    ]  # {"mouth"|"eyes"|"yaw"|...: {"driving": [...], "output": [...]}}
    scores_: dict[str, float]
    landmark_model: dict[str, str]

    def scores(self) -> dict[str, float]:
        """The motion part of the policy's `CheckScores`."""
        return dict(self.scores_)

    def audit_details(self) -> dict[str, Any]:
        """Plain data for the check result (series rounded, so a row stays small)."""
        return {
            **{k: round(v, 6) for k, v in self.scores_.items()},
            "every": self.every,
            "frame_indices": self.frame_indices,
            "driving_missing_ratio": round(self.driving_missing_ratio, 4),
            "output_missing_ratio": round(self.output_missing_ratio, 4),
            "motion_distances": [round(v, 4) for v in self.motion_distances],
            "series": {
                name: {side: [round(v, 4) for v in values] for side, values in pair.items()}
                for name, pair in self.series.items()
            },
            "landmark_model": self.landmark_model,
        }


def correlation(driving: np.ndarray, output: np.ndarray, still_std: float) -> float:
    """Pearson correlation; 1.0 when the driver is still (nothing to follow), 0.0 when only the output is."""
    if len(driving) < 2 or float(np.std(driving)) < still_std:
        return 1.0
    if float(np.std(output)) < 1e-9:
        return 0.0
    value = float(np.corrcoef(driving, output)[0, 1])
    return value if math.isfinite(value) else 0.0


def relative_motion(points: np.ndarray) -> np.ndarray:
    """(T, 68, 2) landmarks -> each frame's centred shape minus the first frame's, in first-frame IODs.

    Centring each frame on its landmarks' mean removes where the face sits in the picture: a driving
    crop follows the head while a full-frame output keeps the face where the portrait had it, so only
    the face's own motion (expression, rotation, scale) is comparable between the two.
    """
    centred = points - points.mean(axis=1, keepdims=True)
    return (centred - centred[0]) / max(inter_ocular(points[0]), 1e-6)


def compare_tracks(
    driving: FaceTrack, output: FaceTrack, *, every: int, model: LandmarkModel
) -> MotionReport:
    """Score how well the output's motion follows the driving video's (see the module docstring)."""
    by_index = dict(zip(output.frame_indices, output.points, strict=True))
    pairs = [
        (i, d, by_index[i])
        for i, d in zip(driving.frame_indices, driving.points, strict=True)
        if d is not None and by_index.get(i) is not None
    ]
    base = {
        "every": every,
        "driving_missing_ratio": driving.missing_ratio,
        "output_missing_ratio": output.missing_ratio,
        "landmark_model": model.as_dict(),
    }
    if len(pairs) < MIN_FRAMES:
        return MotionReport(
            frame_indices=[i for i, _, _ in pairs],
            motion_distances=[],
            series={},
            scores_=_worst_scores(),
            **base,
        )
    indices = [i for i, _, _ in pairs]
    drv = np.stack([d for _, d, _ in pairs])
    out = np.stack([o for _, _, o in pairs])  # type: ignore[misc]
    drv_rel, out_rel = relative_motion(drv), relative_motion(out)
    distances = np.linalg.norm(drv_rel - out_rel, axis=2).mean(axis=1)
    series: dict[str, dict[str, list[float]]] = {
        "mouth": {"driving": [mouth_opening(p) for p in drv], "output": [mouth_opening(p) for p in out]},
        "eyes": {"driving": [eye_opening(p) for p in drv], "output": [eye_opening(p) for p in out]},
    }
    poses = {
        side: [head_pose(p, track.image_size) for p in pts]
        for side, pts, track in (("driving", drv, driving), ("output", out, output))
    }
    for axis, name in enumerate(POSE_AXES):
        series[name] = {
            side: [float("nan") if pose is None else pose[axis] for pose in values]
            for side, values in poses.items()
        }
    scores = {
        "motion_mean_distance": float(np.mean(distances)),
        "motion_worst5_distance": worst_mean([float(v) for v in distances]),
    }
    for name in ("mouth", "eyes"):
        d, o = np.array(series[name]["driving"]), np.array(series[name]["output"])
        scores[f"{name}_correlation"] = correlation(d, o, STILL_STD[name])
        scores[f"{name}_mean_difference"] = float(np.mean(np.abs(d - o)))
    for name in POSE_AXES:
        d, o = np.array(series[name]["driving"]), np.array(series[name]["output"])
        keep = np.isfinite(d) & np.isfinite(o)
        if keep.sum() < MIN_FRAMES:
            scores[f"{name}_correlation"], scores[f"{name}_mean_difference"] = (
                WORST["correlation"],
                WORST["angle_difference"],
            )
            continue
        d, o = d[keep] - np.median(d[keep]), o[keep] - np.median(o[keep])
        scores[f"{name}_correlation"] = correlation(d, o, STILL_STD[name])
        scores[f"{name}_mean_difference"] = float(np.mean(np.abs(d - o)))
    return MotionReport(
        frame_indices=indices,
        motion_distances=[float(v) for v in distances],
        series=series,
        scores_=scores,
        **base,
    )


def _worst_scores() -> dict[str, float]:
    scores = {"motion_mean_distance": WORST["distance"], "motion_worst5_distance": WORST["distance"]}
    for name in ("mouth", "eyes"):
        scores[f"{name}_correlation"] = WORST["correlation"]
        scores[f"{name}_mean_difference"] = WORST["opening_difference"]
    for name in POSE_AXES:
        scores[f"{name}_correlation"] = WORST["correlation"]
        scores[f"{name}_mean_difference"] = WORST["angle_difference"]
    return scores


def check_motion(
    detector: LandmarkDetector,
    driving_frames: Iterable[np.ndarray],
    output_frames: Iterable[np.ndarray],
    *,
    every: int,
) -> MotionReport:
    """Landmarks of both streams at every `every`-th frame, compared (the streams are read one after the other)."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    driving = track_faces(detector, driving_frames, every=every)
    output = track_faces(detector, output_frames, every=every)
    return compare_tracks(driving, output, every=every, model=detector.model)
