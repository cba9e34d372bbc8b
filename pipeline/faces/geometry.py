"""Square face crops the way MCNet was trained, and pasting an animated crop back with a feathered edge.

FOMM/MCNet's VoxCeleb crops show the whole head with a little neck and background: the tight face box
(brows to chin) fills roughly half of the frame. `square_around` grows the face box by `scale` (2.1 by
default) and moves the centre up by `lift` box heights, so the forehead and hair are in. A crop that
would leave the image is shifted back inside when the image is large enough, and padded by repeating
the edge pixels otherwise; the geometry (`CropBox`) is kept so the animated crop can be pasted back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

DEFAULT_SCALE = 2.1
DEFAULT_LIFT = 0.15
FEATHER = 0.08  # share of the crop side over which the pasted crop fades into the portrait


@dataclass(frozen=True)
class CropBox:
    """A square in source-image pixels (it may reach past the image; that part is padded)."""

    x: int
    y: int
    side: int

    def as_dict(self) -> dict[str, int]:
        """Plain numbers for audit records."""
        return asdict(self)


def square_around(
    center: tuple[float, float],
    face_side: float,
    image_size: tuple[int, int],
    *,
    scale: float = DEFAULT_SCALE,
    lift: float = DEFAULT_LIFT,
) -> CropBox:
    """The square crop for a face of `face_side` px centred at `center` in an image of (width, height)."""
    width, height = image_size
    side = max(2, int(round(face_side * scale)))
    cx, cy = center[0], center[1] - lift * face_side
    x, y = int(round(cx - side / 2)), int(round(cy - side / 2))
    if side <= width:
        x = min(max(x, 0), width - side)
    if side <= height:
        y = min(max(y, 0), height - side)
    return CropBox(x=x, y=y, side=side)


def cut(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """The (size, size, 3) uint8 crop of `image` at `box`, edge-padded where the box leaves the image."""
    height, width = image.shape[:2]
    left, top = max(0, -box.x), max(0, -box.y)
    right, bottom = max(0, box.x + box.side - width), max(0, box.y + box.side - height)
    x0, y0 = max(box.x, 0), max(box.y, 0)
    x1, y1 = min(box.x + box.side, width), min(box.y + box.side, height)
    patch = image[y0:y1, x0:x1]
    if left or top or right or bottom:
        patch = cv2.copyMakeBorder(patch, top, bottom, left, right, cv2.BORDER_REPLICATE)
    interpolation = cv2.INTER_AREA if box.side > size else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(patch, (size, size), interpolation=interpolation))


def feather_mask(side: int, *, feather: float = FEATHER) -> np.ndarray:
    """(side, side) float32 weights: 1 inside, falling smoothly to 0 at the edges."""
    ramp = max(1.0, feather * side)
    distance = np.minimum(np.arange(side), np.arange(side)[::-1]).astype(np.float32) + 0.5
    edge = np.clip(distance / ramp, 0.0, 1.0)
    edge = edge * edge * (3.0 - 2.0 * edge)  # smoothstep: no visible seam
    return np.outer(edge, edge).astype(np.float32)


def paste_back(
    full_image: np.ndarray, frame: np.ndarray, box: CropBox, *, feather: float = FEATHER
) -> np.ndarray:
    """Blend an animated (S, S, 3) crop into a copy of the full portrait at `box`, with feathered edges."""
    height, width = full_image.shape[:2]
    interpolation = cv2.INTER_CUBIC if box.side > frame.shape[0] else cv2.INTER_AREA
    patch = cv2.resize(frame, (box.side, box.side), interpolation=interpolation).astype(np.float32)
    mask = feather_mask(box.side, feather=feather)
    x0, y0 = max(box.x, 0), max(box.y, 0)
    x1, y1 = min(box.x + box.side, width), min(box.y + box.side, height)
    out = full_image.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    px, py = x0 - box.x, y0 - box.y
    weights = mask[py : py + (y1 - y0), px : px + (x1 - x0), None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    blended = region * (1.0 - weights) + patch[py : py + (y1 - y0), px : px + (x1 - x0)] * weights
    out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def even_size(image: np.ndarray) -> np.ndarray:
    """Drop a last odd row/column so the frame can be encoded as yuv420p."""
    height, width = image.shape[:2]
    return image[: height - height % 2, : width - width % 2]
