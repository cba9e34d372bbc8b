"""Face-tracked training clips: find, track and crop the one face of a raw video, as the paper's
preprocessing does (its crops are face-centred), with the project's own tracking (`pipeline.faces.tracking`).

A clip that shows no face, or several people (more than one face on a quarter of the sampled frames or
more), is refused: a training pair must be two frames of one person, and the consent checked for the
clip is one person's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from pipeline.faces.detection import MultipleFacesError, NoFaceError, TooManyMissingFacesError, detect_faces
from pipeline.faces.tracking import DETECT_MAX_SIDE, crop_driving
from pipeline.video.reader import iter_frames, probe

logger = logging.getLogger(__name__)

CHECK_SAMPLES = 12  # frames checked for a second person, evenly spread over the clip
SEVERAL_SHARE = 0.25  # refuse when at least this share of the checked frames shows more than one face
MAX_MISSING_SHARE = 0.5  # refuse when more sampled frames than this show no face


def _small(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    factor = min(1.0, DETECT_MAX_SIDE / max(height, width))
    if factor == 1.0:
        return frame
    return cv2.resize(frame, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA)


def count_faces(path: Path, *, samples: int = CHECK_SAMPLES) -> list[int]:
    """How many faces each of `samples` evenly spread frames shows (detected at tracking resolution)."""
    info = probe(path)
    total = max(1, info.frame_count or 1)
    wanted = {int(i) for i in np.linspace(0, total - 1, min(samples, total)).round()}
    counts = []
    for index, frame in enumerate(iter_frames(path, info=info)):
        if index in wanted:
            counts.append(len(detect_faces(_small(frame))))
    return counts


def face_tracked_frames(path: Path, *, size: int, max_frames: int | None = None) -> np.ndarray:
    """The video's frames cropped around its one tracked face and resized: (N, size, size, 3) uint8 RGB.

    Raises:
        NoFaceError: no face, or too many frames without one.
        MultipleFacesError: more than one person in the clip.
        pipeline.video.reader errors: the video cannot be read.
    """
    counts = count_faces(path)
    several = sum(1 for count in counts if count > 1)
    if counts and several / len(counts) >= SEVERAL_SHARE:
        raise MultipleFacesError(
            max(counts), where=f"training video {path.name} ({several} of {len(counts)} checked frames)"
        )
    try:
        crops = crop_driving(path, size=size, max_missing_ratio=MAX_MISSING_SHARE)
    except NoFaceError:
        raise NoFaceError(f"training video {path.name} shows no face") from None
    except TooManyMissingFacesError as exc:
        share = str(exc).split(": ", 1)[-1]
        raise NoFaceError(f"training video {path.name}: {share}") from None
    frames = []
    for crop in crops:
        frames.append(crop)
        if max_frames is not None and len(frames) >= max_frames:
            break
    logger.info(
        "%s: face tracked in %d frames (crop side %d px)",
        path.name,
        len(frames),
        crops.report.boxes[0].side if crops.report.boxes else 0,
    )
    return np.stack(frames)
