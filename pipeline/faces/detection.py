"""Face detection through deepface's offline detectors (dlib HOG or OpenCV Haar), and its errors.

Only `dlib` and `opencv` work without a network here (the others download weights). Neither detector
is safe to share between threads: dlib's HOG detector releases the GIL and keeps scratch buffers in the
object, so two threads running one detector corrupt each other's results (hundreds of "faces") or
crash the process. `detect_faces` therefore uses a detector of its own per thread (built on the
thread's first call, after `pipeline.faces.weights` has put the dlib landmark file in place), and
never deepface's process-wide cached one, which only `pipeline.checks.identity` uses, under `DEEPFACE_LOCK`.
Boxes are tight face boxes in image pixels; deepface clips them to the image, so a box that touches
the border means a face cut by the border.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline.errors import InputError
from pipeline.faces.weights import deepface_module

Detector = Literal["dlib", "opencv"]
DETECTORS: tuple[Detector, ...] = ("dlib", "opencv")
# dlib's HOG scores are > 0 and uncapped (deepface clips them to 1); weak hits below this are clutter.
DEFAULT_MIN_CONFIDENCE = 0.5

# deepface's own detector classes for the names above (deepface 0.0.103's `modeling.AVAILABLE_MODELS`).
_DETECTOR_CLASSES: dict[Detector, tuple[str, str]] = {
    "dlib": ("deepface.models.face_detection.Dlib", "DlibClient"),
    "opencv": ("deepface.models.face_detection.OpenCv", "OpenCvClient"),
}

DEEPFACE_LOCK = threading.RLock()
"""Held around every call into dlib in the process: deepface's process-wide model cache (`DeepFace.represent`
and the Dlib recognition network it caches) and each thread's own detector. dlib is not thread-safe: a
detection running while another thread embeds a face crashed the whole process (SIGSEGV/SIGABRT, no
Python error), which is how a threaded `batch run` died with jobs left open; two threads in one detector
invent hundreds of faces. Serialising costs little: the detector and the model already use the cores they can."""

_per_thread = threading.local()


class FaceError(InputError):
    """Base of the face errors (bad input: never retried). `details` holds what was measured (faces
    found, sizes in pixels, frames), so a refusal can be audited with its cause, not just its text."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.details: dict[str, object] = details


class NoFaceError(FaceError):
    """No face was found where one was required."""


class MultipleFacesError(FaceError):
    """More than one face where exactly one is required."""

    def __init__(self, count: int, where: str = "the portrait") -> None:
        super().__init__(f"{where} shows {count} faces; exactly one is required", faces_found=count)
        self.count = count


class FaceTooSmallError(FaceError):
    """The face is smaller than the minimum size (its side in pixels is in the message)."""

    def __init__(self, size_px: int, minimum_px: int, where: str = "the portrait") -> None:
        super().__init__(
            f"the face in {where} is {size_px} px wide; at least {minimum_px} px is required",
            faces_found=1,
            face_px=size_px,
            min_face_px=minimum_px,
        )
        self.size_px = size_px
        self.minimum_px = minimum_px


class FaceCutByBorderError(FaceError):
    """The face touches the image border, so part of it is missing."""


class TooManyMissingFacesError(FaceError):
    """Too many frames of a driving video show no face."""


@dataclass(frozen=True)
class FaceBox:
    """A detected face: top-left corner, width, height (pixels) and the detector's confidence."""

    x: int
    y: int
    w: int
    h: int
    confidence: float

    @property
    def side(self) -> int:
        """The longer side: the face's size in pixels."""
        return max(self.w, self.h)

    @property
    def center(self) -> tuple[float, float]:
        """(x, y) of the box centre."""
        return self.x + self.w / 2.0, self.y + self.h / 2.0

    def touches_border(self, width: int, height: int, *, tolerance: int = 1) -> bool:
        """Whether the box reaches the image edge (deepface clips boxes, so a clipped box ends there)."""
        return (
            self.x <= tolerance
            or self.y <= tolerance
            or self.x + self.w >= width - tolerance
            or self.y + self.h >= height - tolerance
        )


def _detector(name: Detector) -> Any:
    """This thread's own detector `name`: built on the thread's first call, never shared with another."""
    if name not in DETECTORS:
        raise ValueError(f"face detector must be one of {DETECTORS}, got {name!r}")
    detectors: dict[str, Any] | None = getattr(_per_thread, "detectors", None)
    if detectors is None:
        detectors = _per_thread.detectors = {}
    if name not in detectors:
        deepface_module()  # weights in place, deepface importable
        module, cls = _DETECTOR_CLASSES[name]
        detectors[name] = getattr(importlib.import_module(module), cls)()
    return detectors[name]


def detect_faces(
    image: np.ndarray,
    *,
    detector: Detector = "dlib",
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> list[FaceBox]:
    """All faces in an (H, W, 3) uint8 RGB image with confidence >= `min_confidence`, largest first."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.dtype} {image.shape}")
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    model = _detector(detector)
    with DEEPFACE_LOCK:
        regions = model.detect_faces(bgr)
    faces = [
        FaceBox(x=int(r.x), y=int(r.y), w=int(r.w), h=int(r.h), confidence=float(r.confidence or 0.0))
        for r in regions
        if r.w > 0 and r.h > 0 and float(r.confidence or 0.0) >= min_confidence
    ]
    return sorted(faces, key=lambda f: f.w * f.h, reverse=True)
