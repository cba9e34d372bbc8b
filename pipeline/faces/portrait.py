"""Face preprocessing: one usable face in the portrait, cropped the way the model was trained.

`prepare_portrait` demands exactly one face of sufficient size, not cut by the border, and returns a
square crop at the model's resolution with the crop geometry, so that `compose_output` can paste each
animated frame back into the full portrait (output mode `full_frame`) or keep the crop (`crop`).
Driving videos are tracked and cropped by `crop_driving` (in `pipeline.faces.tracking`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.faces.detection import (
    DEFAULT_MIN_CONFIDENCE,
    Detector,
    FaceBox,
    FaceCutByBorderError,
    FaceError,
    FaceTooSmallError,
    MultipleFacesError,
    NoFaceError,
    TooManyMissingFacesError,
    detect_faces,
)
from pipeline.faces.geometry import (
    DEFAULT_LIFT,
    DEFAULT_SCALE,
    CropBox,
    cut,
    even_size,
    paste_back,
    square_around,
)
from pipeline.faces.tracking import DrivingCrops, DrivingReport, crop_driving

__all__ = [
    "CropBox",
    "DrivingCrops",
    "DrivingReport",
    "FaceBox",
    "FaceCutByBorderError",
    "FaceError",
    "FaceTooSmallError",
    "MIN_FACE_PX",
    "MultipleFacesError",
    "NoFaceError",
    "OutputMode",
    "PortraitCrop",
    "TooManyMissingFacesError",
    "compose_output",
    "crop_driving",
    "detect_faces",
    "paste_back",
    "prepare_portrait",
    "single_face",
]

OutputMode = Literal["crop", "full_frame"]
MIN_FACE_PX = 64  # a smaller face would be upscaled more than ~2x into a 256 crop


@dataclass(frozen=True)
class PortraitCrop:
    """The model's input crop (S, S, 3) uint8 RGB, where it came from, and the face found."""

    crop: np.ndarray
    box: CropBox
    face: FaceBox
    image_size: tuple[int, int]  # (width, height) of the full portrait


def prepare_portrait(
    image: np.ndarray,
    *,
    size: int,
    detector: Detector = "dlib",
    min_face_px: int = MIN_FACE_PX,
    scale: float = DEFAULT_SCALE,
    lift: float = DEFAULT_LIFT,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> PortraitCrop:
    """Find the one face in an (H, W, 3) RGB portrait and crop it square at `size` x `size`.

    Raises:
        NoFaceError, MultipleFacesError, FaceTooSmallError, FaceCutByBorderError.
    """
    height, width = image.shape[:2]
    face = single_face(image, detector=detector, min_face_px=min_face_px, min_confidence=min_confidence)
    box = square_around(face.center, face.side, (width, height), scale=scale, lift=lift)
    return PortraitCrop(crop=cut(image, box, size), box=box, face=face, image_size=(width, height))


def single_face(
    image: np.ndarray,
    *,
    where: str = "the portrait",
    detector: Detector = "dlib",
    min_face_px: int = MIN_FACE_PX,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> FaceBox:
    """The one usable face of a photo: exactly one, at least `min_face_px`, not cut by the border.

    The same rules hold for a portrait and for a subject's reference photo. Each refusal carries what
    was measured in `details` (faces found, the face's size in pixels, its box).

    Raises:
        NoFaceError, MultipleFacesError, FaceTooSmallError, FaceCutByBorderError.
    """
    height, width = image.shape[:2]
    faces = detect_faces(image, detector=detector, min_confidence=min_confidence)
    if not faces:
        raise NoFaceError(
            f"no face found in {where} ({width}x{height}, detector {detector})",
            faces_found=0,
            image_px=[width, height],
        )
    if len(faces) > 1:
        raise MultipleFacesError(len(faces), where)
    face = faces[0]
    if face.side < min_face_px:
        raise FaceTooSmallError(face.side, min_face_px, where)
    if face.touches_border(width, height):
        raise FaceCutByBorderError(
            f"the face in {where} touches the image border at ({face.x}, {face.y}, {face.w}x{face.h}); "
            "give a photo with the whole face inside",
            faces_found=1,
            face_px=face.side,
            box=[face.x, face.y, face.w, face.h],
            image_px=[width, height],
        )
    return face


def compose_output(
    frame: np.ndarray, *, mode: OutputMode, portrait: np.ndarray | None = None, box: CropBox | None = None
) -> np.ndarray:
    """An output frame: the animated crop itself (`crop`), or pasted into the full portrait (`full_frame`).

    `full_frame` output drops a last odd row/column so it can be encoded as yuv420p.
    """
    if mode == "crop":
        return frame
    if mode != "full_frame":
        raise ValueError(f"output mode must be 'crop' or 'full_frame', got {mode!r}")
    if portrait is None or box is None:
        raise ValueError("output mode 'full_frame' needs the full portrait and its crop box")
    return even_size(paste_back(portrait, frame, box))
