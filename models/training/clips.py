"""The on-disk format of prepared training data: one uint8 frame tensor per clip and a JSON manifest.

Layout (written by `ClipWriter`, read by `read_manifest` / `load_clip`)::

    DATA/manifest.json        {"format", "image_size", "clips": [ClipInfo...]}
    DATA/clips/<name>.pt      uint8 tensor (N, 3, S, S), RGB, saved with `torch.save`

Frames are stored as tensors rather than PNG files because `models/` may import torch and the standard
library only; `torch.load(weights_only=True)` reads them without any image codec. A clip is one shot of
one person; `split` is "train" or "heldout" (evaluation never sees a training clip).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import torch
from torch import Tensor

from models.digest import sha256_file
from models.training.errors import TrainingDataError

CLIPS_FORMAT = "likeness.training-clips/1"
MANIFEST = "manifest.json"
SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class ClipInfo:
    """One clip of the manifest.

    Attributes:
        name: unique file-safe name; the tensor lives at `clips/<name>.pt`.
        split: "train" or "heldout".
        frames: number of frames N.
        origin: where the frames came from (a video or folder name, never a full path).
        first_frame: index of the clip's first frame in its origin.
        sha256: digest of the tensor file, checked when the clip is loaded.
        subject: the governance subject reference of the person shown ("" when not given; a governed
            `likeness train run` refuses such a clip). Older manifests without it read as "".
    """

    name: str
    split: str
    frames: int
    origin: str
    first_frame: int
    sha256: str
    subject: str = ""


@dataclass(frozen=True)
class ClipManifest:
    """The manifest of a prepared data folder."""

    root: Path
    image_size: int
    clips: tuple[ClipInfo, ...]

    def split(self, name: str) -> tuple[ClipInfo, ...]:
        """The clips of one split, in manifest order."""
        return tuple(clip for clip in self.clips if clip.split == name)


class ClipWriter:
    """Writes a data folder atomically: clips go to a temporary sibling that is renamed on success.

    Use as a context manager; on an exception nothing is left at `root`.
    """

    def __init__(self, root: Path, *, image_size: int) -> None:
        self.root = Path(root)
        self.image_size = image_size
        self._clips: list[ClipInfo] = []
        self._tmp: Path | None = None

    def __enter__(self) -> ClipWriter:
        if self.root.exists() and any(self.root.iterdir()):
            raise TrainingDataError(f"training data folder {self.root} already exists and is not empty")
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.root.name}.", dir=self.root.parent))
        (self._tmp / "clips").mkdir()
        return self

    def add(
        self, name: str, frames: Tensor, *, split: str, origin: str, first_frame: int, subject: str = ""
    ) -> ClipInfo:
        """Store one clip.

        Args:
            name: unique, file-safe clip name.
            frames: (N, 3, S, S) uint8 RGB with S = image_size and N >= 2.
            split: "train" or "heldout".
            origin: the video or folder name the frames came from.
            first_frame: index of frames[0] in the origin.
            subject: the subject reference of the person shown, if known.
        """
        if self._tmp is None:
            raise RuntimeError("ClipWriter.add called outside its `with` block")
        if split not in SPLITS:
            raise TrainingDataError(f"clip `{name}`: split must be one of {SPLITS}, got {split!r}")
        if any(clip.name == name for clip in self._clips) or not name or "/" in name or name.startswith("."):
            raise TrainingDataError(f"clip name {name!r} is empty, not file-safe or used twice")
        expected = (3, self.image_size, self.image_size)
        if frames.dtype != torch.uint8 or frames.dim() != 4 or tuple(frames.shape[1:]) != expected:
            raise TrainingDataError(
                f"clip `{name}`: frames must be uint8 (N, {expected[0]}, {expected[1]}, {expected[2]}), "
                f"got {frames.dtype} {tuple(frames.shape)}"
            )
        if frames.shape[0] < 2:
            raise TrainingDataError(f"clip `{name}` has {frames.shape[0]} frame(s); a pair needs at least 2")
        path = self._tmp / "clips" / f"{name}.pt"
        torch.save(frames.contiguous().clone(), path)
        info = ClipInfo(
            name, split, int(frames.shape[0]), origin, int(first_frame), sha256_file(path), subject
        )
        self._clips.append(info)
        return info

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        tmp, self._tmp = self._tmp, None
        if tmp is None:
            return
        if kind is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            return
        try:
            if not self._clips:
                raise TrainingDataError(f"no clips were written to {self.root}")
            manifest = {
                "format": CLIPS_FORMAT,
                "image_size": self.image_size,
                "clips": [dataclasses.asdict(clip) for clip in self._clips],
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            if self.root.exists():
                self.root.rmdir()  # empty, checked on entry
            os.replace(tmp, self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def read_manifest(root: Path) -> ClipManifest:
    """Read and validate `root/manifest.json`.

    Raises:
        TrainingDataError: the folder or manifest is missing, malformed, or lists no clips.
    """
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise TrainingDataError(f"training data folder {root} does not exist")
    if not path.is_file():
        raise TrainingDataError(f"{root} has no {MANIFEST}: prepare it with `likeness train prepare`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainingDataError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != CLIPS_FORMAT:
        raise TrainingDataError(f"{path} is not a {CLIPS_FORMAT} manifest")
    size = data.get("image_size")
    if not isinstance(size, int) or size <= 0:
        raise TrainingDataError(f"{path}: `image_size` must be a positive int, got {size!r}")
    fields = {field.name for field in dataclasses.fields(ClipInfo)}
    clips = []
    for entry in data.get("clips") or []:
        if not isinstance(entry, dict) or not fields - {"subject"} <= set(entry) <= fields:
            raise TrainingDataError(f"{path}: malformed clip entry {entry!r:.80}")
        clip = ClipInfo(**entry)
        if clip.split not in SPLITS:
            raise TrainingDataError(f"{path}: clip `{clip.name}` has unknown split {clip.split!r}")
        clips.append(clip)
    if not clips:
        raise TrainingDataError(f"{path} lists no clips")
    return ClipManifest(root=root, image_size=size, clips=tuple(clips))


def load_clip(manifest: ClipManifest, clip: ClipInfo) -> Tensor:
    """Load one clip's frames, checking digest, dtype and shape.

    Returns:
        (N, 3, S, S) uint8 tensor.

    Raises:
        TrainingDataError: the file is missing, altered, unreadable or of the wrong shape.
    """
    path = manifest.root / "clips" / f"{clip.name}.pt"
    if not path.is_file():
        raise TrainingDataError(f"clip file {path} is missing")
    if sha256_file(path) != clip.sha256:
        raise TrainingDataError(f"clip file {path} does not match its sha256 in the manifest")
    try:
        frames = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise TrainingDataError(f"clip file {path} is unreadable: {str(exc).splitlines()[0]}") from None
    size = manifest.image_size
    if (
        not isinstance(frames, Tensor)
        or frames.dtype != torch.uint8
        or tuple(frames.shape) != (clip.frames, 3, size, size)
    ):
        raise TrainingDataError(f"clip file {path} is not a uint8 ({clip.frames}, 3, {size}, {size}) tensor")
    return frames
