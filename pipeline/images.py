"""Image in: a portrait or reference photo as an upright RGB array, or a one-line refusal.

Pillow reads only the header when it opens a file, so the pixel count is checked before a single pixel
is decoded: a 20000x20000 "decompression bomb" is refused without allocating its 1.2 GB. Animated
images (GIF, APNG, WebP) are refused rather than silently reduced to their first frame. EXIF
orientation is applied, and greyscale, palette, CMYK, 16-bit and transparent images all come out as
plain 8-bit RGB (transparency is flattened onto white).
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.errors import InputError

# Formats a portrait may come in (Pillow's names). GIF only when it has a single frame.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO"})
MIN_SIDE = 16  # pixels; nothing smaller can hold a detectable face


class ImageError(InputError):
    """Base of the image input errors (bad input: never retried)."""


class NotAnImageError(ImageError):
    """The file is not an image Pillow recognises (a video, a text file, garbage)."""


class UnsupportedImageError(ImageError):
    """A recognised but unaccepted format, or an animated image."""


class ImageTooLargeError(ImageError):
    """More pixels than allowed: refused from the header, before decoding (decompression bomb)."""


class ImageTooSmallError(ImageError):
    """A side shorter than `MIN_SIDE` pixels (a 1x1 tracking pixel, a thumbnail)."""


class CorruptImageError(ImageError):
    """The header is fine but the pixel data is truncated or damaged."""


def load_image(path: Path | str, *, max_pixels: int, min_side: int = MIN_SIDE) -> np.ndarray:
    """Decode an image file to an upright (H, W, 3) uint8 RGB array.

    Args:
        path: the image file.
        max_pixels: the largest width x height accepted (checked from the header, before decoding).
        min_side: the shortest side accepted, in pixels.

    Raises:
        ImageError subclasses, each naming the file and the cause in one line.
    """
    target = Path(path)
    if not target.is_file():
        raise NotAnImageError(f"image {target} does not exist or is not a file")
    if target.stat().st_size == 0:
        raise NotAnImageError(f"image {target} is empty (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(target) as image:
                _check_header(target, image, max_pixels=max_pixels, min_side=min_side)
                try:
                    image.load()
                except (OSError, SyntaxError, ValueError) as exc:
                    raise CorruptImageError(f"image {target} is corrupt or truncated: {exc}") from None
                return to_rgb(ImageOps.exif_transpose(image))
        except Image.DecompressionBombError:  # Pillow's own guard tripped first: say it in our words
            raise ImageTooLargeError(_too_large(target, _header_size(target), max_pixels)) from None
        except UnidentifiedImageError:
            raise NotAnImageError(f"{target} is not an image in a recognised format") from None


def _check_header(target: Path, image: Image.Image, *, max_pixels: int, min_side: int) -> None:
    """Refuse on what the header says: format, animation, pixel count, tiny sides."""
    if image.format not in ALLOWED_FORMATS:
        raise UnsupportedImageError(
            f"image {target} is {image.format}; accepted: {', '.join(sorted(ALLOWED_FORMATS))}"
        )
    frames = int(getattr(image, "n_frames", 1))
    if getattr(image, "is_animated", False) and frames > 1:
        raise UnsupportedImageError(
            f"image {target} is animated ({image.format}, {frames} frames): give a still"
        )
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(_too_large(target, (width, height), max_pixels))
    if min(width, height) < min_side:
        raise ImageTooSmallError(
            f"image {target} is {width}x{height}; each side must be >= {min_side} pixels"
        )


def _too_large(target: Path, size: tuple[int, int] | None, max_pixels: int) -> str:
    """The one refusal line for too many pixels, whichever guard (ours or Pillow's) saw it first."""
    if size is None:
        return f"image {target} has more pixels than its header can say; at most {max_pixels} are allowed"
    width, height = size
    return f"image {target} is {width}×{height} = {width * height} pixels; at most {max_pixels} are allowed"


def _header_size(target: Path) -> tuple[int, int] | None:
    """Width and height of a file Pillow's bomb guard refused to open, read by the accepted formats' own
    header parsers (which is all `Image.open` runs before that guard): nothing is decoded."""
    Image.init()
    with target.open("rb") as fp:
        prefix = fp.read(16)
        for name in sorted(ALLOWED_FORMATS & set(Image.OPEN)):  # MPO opens through JPEG's parser
            factory, accept = Image.OPEN[name]
            verdict = accept(prefix) if accept is not None else True
            if not verdict or isinstance(verdict, str):
                continue
            fp.seek(0)
            try:
                with factory(fp, str(target)) as image:
                    return image.size
            except (SyntaxError, IndexError, TypeError, ValueError, OSError, struct.error):
                continue
    return None


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode as (H, W, 3) uint8 RGB; transparency is flattened onto white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = values.max() or 1.0
        grey = np.clip(values / top * 255.0, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
