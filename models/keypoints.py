"""Driving-keypoint normalisation: relative motion transferred onto the source, with movement-scale adaptation."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from models.keypoint_detector import KeypointOutput


def convex_hull_area(points: Tensor) -> float:
    """Area of the convex hull of (N, 2) points, in float64 (monotone chain; 0.0 if degenerate).

    Replaces scipy's ConvexHull(...).volume of the reference so that `models/` needs torch only.
    """
    pts = sorted({(float(x), float(y)) for x, y in points.detach().to("cpu", torch.float64).tolist()})
    if len(pts) < 3:
        return 0.0

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[float, float]] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = lower[:-1] + upper[:-1]
    twice = sum(
        hull[i][0] * hull[(i + 1) % len(hull)][1] - hull[(i + 1) % len(hull)][0] * hull[i][1]
        for i in range(len(hull))
    )
    return abs(twice) / 2


def movement_scale(kp_source: KeypointOutput, kp_driving_initial: KeypointOutput) -> float:
    """sqrt(source hull area) / sqrt(first driving frame hull area), from batch element 0 of each.

    Adapts the driving motion amplitude to the source face's size. 1.0 when a hull is degenerate.
    """
    source_area = convex_hull_area(kp_source.value[0])
    driving_area = convex_hull_area(kp_driving_initial.value[0])
    if source_area <= 0 or driving_area <= 0:
        return 1.0
    return math.sqrt(source_area) / math.sqrt(driving_area)


def normalize_keypoints(
    kp_source: KeypointOutput,
    kp_driving: KeypointOutput,
    kp_driving_initial: KeypointOutput,
    *,
    relative: bool,
    scale: float = 1.0,
) -> KeypointOutput:
    """Keypoints for the generator.

    Relative mode: value = (kp_d - kp_d0) * scale + kp_s and J = (J_d J_d0^-1) J_s, so the source keeps
    its own pose and only the driving *motion* is transferred. Absolute mode returns `kp_driving` unchanged.

    Args:
        kp_source: (1 or B, K, ...) source keypoints.
        kp_driving: (B, K, ...) keypoints of the driving frames.
        kp_driving_initial: (1, K, ...) keypoints of the first driving frame.
        relative: relative (True) or absolute (False) motion.
        scale: from `movement_scale` (adapt_movement_scale), else 1.0.
    """
    if not relative:
        return kp_driving
    diff = kp_driving.value - kp_driving_initial.value
    value = diff * scale + kp_source.value
    jacobian = None
    if (
        kp_driving.jacobian is not None
        and kp_driving_initial.jacobian is not None
        and kp_source.jacobian is not None
    ):
        jacobian_diff = torch.matmul(kp_driving.jacobian, torch.inverse(kp_driving_initial.jacobian))
        jacobian = torch.matmul(jacobian_diff, kp_source.jacobian)
    return KeypointOutput(value=value, jacobian=jacobian)
