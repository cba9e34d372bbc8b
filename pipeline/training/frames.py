"""Turn talking-face videos or frame folders into the clip files `models.training` reads.

Each input becomes one clip, centre-cropped to a square and resized to the model's size; the last
`heldout_fraction` of each clip's frames is kept apart as a held-out clip (evaluation never trains on it).
Videos are decoded with ffmpeg (argument lists through ffmpeg-python, never a shell); frame folders
(VoxCeleb style: one folder of PNG/JPEG frames per video) with Pillow. The output folder is written
atomically: on any error nothing is left behind.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from models.training.clips import ClipManifest, ClipWriter, read_manifest
from pipeline.errors import InputError

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
MIN_FRAMES = 2


class TrainingFramesError(InputError):
    """An input cannot become training frames: missing, unreadable, too short, or nothing found."""


@dataclass(frozen=True)
class Source:
    """One input clip: a video file or a folder of frames."""

    path: Path
    kind: str  # "video" | "frames"


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def find_sources(inputs: Iterable[Path]) -> list[Source]:
    """Expand the inputs: a video file; a folder of frames; or a folder holding videos and frame folders.

    Raises:
        TrainingFramesError: an input does not exist, or nothing usable is found.
    """
    found: list[Source] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise TrainingFramesError(f"training input {path} does not exist")
        if path.is_file():
            if path.suffix.lower() not in VIDEO_SUFFIXES:
                raise TrainingFramesError(
                    f"training input {path} is not a video ({', '.join(sorted(VIDEO_SUFFIXES))})"
                )
            found.append(Source(path, "video"))
        elif _images(path):
            found.append(Source(path, "frames"))
        else:
            for child in sorted(path.iterdir()):
                if child.is_file() and child.suffix.lower() in VIDEO_SUFFIXES:
                    found.append(Source(child, "video"))
                elif child.is_dir() and _images(child):
                    found.append(Source(child, "frames"))
    if not found:
        names = ", ".join(str(Path(p)) for p in inputs) or "(no inputs)"
        raise TrainingFramesError(f"no videos or frame folders found in {names}")
    return found


def _square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop an HxWx3 uint8 image to a square and resize it (area filter) to size x size."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(image[top : top + side, left : left + side])
    return np.asarray(
        crop.resize((size, size), Image.Resampling.BOX if side >= size else Image.Resampling.BICUBIC)
    )


def decode_video(path: Path, *, size: int, max_frames: int | None = None) -> np.ndarray:
    """All frames of a video, centre-cropped and resized: (N, size, size, 3) uint8 RGB.

    Raises:
        TrainingFramesError: ffmpeg cannot decode the file, or it has fewer than 2 frames.
    """
    stream = ffmpeg.input(str(path)).video.filter("crop", "min(iw,ih)", "min(iw,ih)")
    stream = stream.filter("scale", size, size, flags="area")
    output = stream.output(
        "pipe:", format="rawvideo", pix_fmt="rgb24", **({"vframes": max_frames} if max_frames else {})
    )
    try:
        raw, _ = output.global_args("-nostdin", "-loglevel", "error").run(
            capture_stdout=True, capture_stderr=True
        )
    except ffmpeg.Error as exc:
        tail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        reason = tail[-1] if tail else "ffmpeg failed"
        raise TrainingFramesError(f"cannot decode video {path.name}: {reason}") from None
    frame_bytes = size * size * 3
    count = len(raw) // frame_bytes
    if count < MIN_FRAMES:
        raise TrainingFramesError(
            f"video {path.name} has {count} decodable frame(s); at least {MIN_FRAMES} needed"
        )
    return np.frombuffer(raw[: count * frame_bytes], dtype=np.uint8).reshape(count, size, size, 3).copy()


def read_frame_folder(folder: Path, *, size: int, max_frames: int | None = None) -> np.ndarray:
    """The frames of a VoxCeleb-style folder (sorted by name), centre-cropped and resized.

    Raises:
        TrainingFramesError: a frame is unreadable, or fewer than 2 frames.
    """
    paths = _images(folder)[:max_frames] if max_frames else _images(folder)
    if len(paths) < MIN_FRAMES:
        raise TrainingFramesError(
            f"frame folder {folder.name} has {len(paths)} frame(s); at least {MIN_FRAMES} needed"
        )
    frames = []
    for path in paths:
        try:
            with Image.open(path) as image:
                frames.append(_square_resize(np.asarray(image.convert("RGB")), size))
        except (UnidentifiedImageError, OSError) as exc:
            raise TrainingFramesError(f"frame {path.name} in {folder.name} is unreadable: {exc}") from None
    return np.stack(frames)


def _clip_name(path: Path, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem if path.is_file() else path.name).strip("._") or "clip"
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}-{n}"
    used.add(name)
    return name


def prepare_training_data(
    inputs: Sequence[Path],
    out_dir: Path,
    *,
    size: int,
    heldout_fraction: float = 0.2,
    max_frames: int | None = None,
    subjects: Sequence[str] | None = None,
    crop: str = "center",
) -> ClipManifest:
    """Decode every input into `out_dir` (see `models.training.clips` for the layout).

    Args:
        inputs: video files, frame folders, or folders of either.
        out_dir: the new data folder (must not exist or be empty).
        size: frame side in pixels (the model's `image_size`).
        heldout_fraction: share of each clip's last frames held out for evaluation (0 disables). A clip
            too short to give both parts at least 2 frames goes to training whole (logged).
        max_frames: read at most this many frames per input.
        subjects: the subject reference of the person in each input (one for all, or one per input),
            recorded with every clip so that training can check that person's consent.
        crop: for videos, "center" (a square centre crop: face-centred footage) or "face" (the one face
            found and tracked by `pipeline.training.faces`; a clip with no face or several is refused).
            Frame folders are used as they are (VoxCeleb-style folders are already face crops).

    Returns:
        The manifest of the written folder.

    Raises:
        TrainingFramesError: bad inputs or settings (nothing is written then).
    """
    if size < 16:
        raise TrainingFramesError(f"frame size must be at least 16 pixels, got {size}")
    if crop not in ("center", "face"):
        raise TrainingFramesError(f"crop must be 'center' or 'face', got {crop!r}")
    if not 0 <= heldout_fraction < 1:
        raise TrainingFramesError(f"held-out fraction must be in [0, 1), got {heldout_fraction}")
    if subjects is not None and len(subjects) not in (1, len(inputs)):
        raise TrainingFramesError(
            f"give one subject for all inputs or one per input, got {len(subjects)} for {len(inputs)} inputs"
        )
    sources = [
        (source, subjects[0 if len(subjects) == 1 else index] if subjects else "")
        for index, path in enumerate(inputs)
        for source in find_sources([path])
    ]
    used: set[str] = set()
    with ClipWriter(Path(out_dir), image_size=size) as writer:
        for source, subject in sources:
            if source.kind == "video" and crop == "face":
                from pipeline.training.faces import face_tracked_frames

                frames = face_tracked_frames(source.path, size=size, max_frames=max_frames)
            elif source.kind == "video":
                frames = decode_video(source.path, size=size, max_frames=max_frames)
            else:
                frames = read_frame_folder(source.path, size=size, max_frames=max_frames)
            tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).contiguous()
            name = _clip_name(source.path, used)
            total = tensor.shape[0]
            held = round(total * heldout_fraction)
            if heldout_fraction and (held < MIN_FRAMES or total - held < MIN_FRAMES):
                logger.warning(
                    "%s has %d frames: too short to hold frames out, all used for training", name, total
                )
                held = 0
            split_at = total - held
            writer.add(
                name,
                tensor[:split_at],
                split="train",
                origin=source.path.name,
                first_frame=0,
                subject=subject,
            )
            if held:
                writer.add(
                    f"{name}.heldout",
                    tensor[split_at:],
                    split="heldout",
                    origin=source.path.name,
                    first_frame=split_at,
                    subject=subject,
                )
            logger.info("%s: %d training and %d held-out frames at %dx%d", name, split_at, held, size, size)
    return read_manifest(Path(out_dir))
