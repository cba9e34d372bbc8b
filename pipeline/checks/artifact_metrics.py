"""The measurements behind the artifact checks, as small pure functions on uint8 RGB frames."""

from __future__ import annotations

import cv2
import numpy as np

THUMB = 64  # frame differences are taken on 64x64 grey thumbnails: cheap, and blind to encoder noise
FROZEN_MAX_DIFF = 0.1  # mean |difference| (grey levels) under which two frames count as identical (a still
# person on camera still moves by 0.2-0.5; repeated frames after H.264 differ by <= 0.01)
FLICKER_MAD_FACTOR = 6.0  # a jump is an outlier past median + 6 x MAD of the clip's jumps...
FLICKER_FLOOR = 4.0  # ...and past 4 grey levels (a still clip's tiny jumps are never "outliers")
HIST_BINS = 64


def grey(frame: np.ndarray) -> np.ndarray:
    """(H, W) uint8 luminance of an RGB frame."""
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def sharpness(frame: np.ndarray) -> float:
    """Variance of the Laplacian of the luminance: high for crisp detail, low for blur."""
    return float(cv2.Laplacian(grey(frame), cv2.CV_64F).var())


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """A 64x64 float32 grey copy, for frame-to-frame differences."""
    return cv2.resize(grey(frame), (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)


def mean_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails (grey levels)."""
    return float(np.mean(np.abs(a - b)))


def flicker_outliers(jumps: list[float]) -> list[int]:
    """Indices of frame-to-frame differences far above the clip's typical motion (robust: median + MAD)."""
    if len(jumps) < 3:
        return []
    values = np.asarray(jumps)
    moving = values[values >= FROZEN_MAX_DIFF]  # frozen stretches would drag the baseline to zero
    baseline = moving if len(moving) >= 3 else values
    median = float(np.median(baseline))
    mad = float(np.median(np.abs(baseline - median)))
    limit = max(FLICKER_FLOOR, median + FLICKER_MAD_FACTOR * mad)
    return [int(i) for i in np.flatnonzero(values > limit)]


def longest_frozen_run(jumps: list[float]) -> int:
    """The most consecutive frames that repeat the one before (0 when every frame changes)."""
    longest = current = 0
    for jump in jumps:
        current = current + 1 if jump < FROZEN_MAX_DIFF else 0
        longest = max(longest, current)
    return longest


def lab_histograms(frame: np.ndarray) -> np.ndarray:
    """(3, HIST_BINS) normalised histograms of L*, a*, b* (true Lab units: L 0-100, a/b -128-127)."""
    lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB)
    hists = [
        np.histogram(lab[:, :, c], bins=HIST_BINS, range=(0, 256))[0].astype(np.float64) for c in range(3)
    ]
    return np.stack([h / max(h.sum(), 1.0) for h in hists])


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Earth mover's distance between two sets of Lab histograms, in Lab units, averaged over L*, a*, b*.

    OpenCV stores L* scaled to 0-255; it is scaled back to 0-100 so all three channels read in Lab units.
    """
    width = 256 / HIST_BINS
    moved = np.abs(np.cumsum(a, axis=1) - np.cumsum(b, axis=1)).sum(axis=1) * width
    moved[0] *= 100.0 / 255.0
    return float(moved.mean())
