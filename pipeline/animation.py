"""The animation stage: a portrait crop and driving crops in, animated uint8 frames out (wraps `models`).

`PortraitAnimator` is built once per worker process: it loads and verifies the checkpoint and chooses the
device and the numerics mode once, so every job it renders records the same fingerprint and mode.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from models.config import MCNetConfig
from models.cpu_allocator import retain_freed_memory
from models.errors import CheckpointError, ConfigError, InputShapeError, InputValueError
from models.inference import (
    Mode,
    animate,
    effective_mode,
    fast_dtype,
    resolve_device,
    use_channels_last,
    use_low_precision,
)
from models.loading import load_mcnet
from pipeline.errors import InputError, PermanentError

logger = logging.getLogger(__name__)


class AnimationInputError(InputError):
    """A source crop or driving frame the model cannot take (size, channels, dtype, empty sequence)."""


class ModelUnavailable(PermanentError):
    """The checkpoint or the requested device cannot be used (missing, corrupt, wrong sha256, no CUDA)."""


def _check_frame(frame: object, *, size: int, name: str) -> np.ndarray:
    """Refuse anything but an (size, size, 3) uint8 RGB array."""
    if not isinstance(frame, np.ndarray):
        raise AnimationInputError(f"{name} must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise AnimationInputError(f"{name} must be uint8 RGB, got dtype {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise AnimationInputError(f"{name} must have shape (H, W, 3), got {frame.shape}")
    if frame.shape[:2] != (size, size):
        raise AnimationInputError(f"{name} must be {size}x{size}, got {frame.shape[1]}x{frame.shape[0]}")
    return frame


def _to_tensor(frame: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).to(torch.float32).div_(255.0)


class PortraitAnimator:
    """Loads MCNet once and renders jobs with it.

    Args:
        checkpoint: path of the checkpoint (authors' format, our config inside or beside).
        expected_sha256: refuse the checkpoint unless its SHA-256 matches (recommended in production).
        device: 'auto' (CUDA when present), 'cpu' or 'cuda'.
        mode: 'exact' (float32) or 'fast' (decoder and memory unit in bf16/fp16 on CUDA and on CPUs with AMX;
            falls back to exact elsewhere, where bf16 measured slower than float32).
        batch_size: driving frames per forward pass; default 1 on CPU (its convolutions already run near
            the CPU's peak at batch 1, and memory grows with the batch) and 8 on CUDA.
        channels_last: run the convolutions in NHWC; default: only in fast mode on CUDA (tensor cores).
            On this CPU NHWC measured no faster (bf16 and fp32).

    Raises:
        ModelUnavailable: the checkpoint or the device cannot be used.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike[str],
        *,
        expected_sha256: str | None = None,
        device: str = "auto",
        mode: str = "exact",
        batch_size: int | None = None,
        channels_last: bool | None = None,
    ) -> None:
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
        try:
            self._device = resolve_device(device)
            requested = Mode(mode)
        except (ConfigError, ValueError) as exc:
            raise ModelUnavailable(f"cannot use device/mode {device!r}/{mode!r}: {exc}") from None
        try:
            loaded = load_mcnet(checkpoint, expected_sha256=expected_sha256, device=self._device)
        except CheckpointError as exc:
            raise ModelUnavailable(str(exc)) from exc
        self._config = loaded.config
        self._fingerprint = loaded.sha256
        if self._device.type == "cpu":
            retain_freed_memory()  # 10-17 % of a CPU frame is page faults otherwise (models.cpu_allocator)
        self._mode = effective_mode(requested, self._device)
        model = loaded.model
        self._dtype = torch.float32
        if self._mode is Mode.FAST:
            low = fast_dtype(self._device)
            assert low is not None  # effective_mode() guarantees a fast path
            model = use_low_precision(model, low)  # once, instead of autocast re-casting every forward
            self._dtype = low
        if channels_last is None:
            channels_last = self._mode is Mode.FAST and self._device.type == "cuda"
        self._model = use_channels_last(model) if channels_last else model
        if batch_size is None:
            batch_size = 8 if self._device.type == "cuda" else 1
        self._batch_size = batch_size
        logger.info(
            "portrait animator ready: checkpoint %s, device %s, mode %s (%s), batch %d, %d intra-op threads",
            self._fingerprint[:12],
            self._device,
            self._mode,
            self.dtype,
            batch_size,
            self.threads,
        )

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the checkpoint file: the model identity recorded with every job."""
        return self._fingerprint

    @property
    def config(self) -> MCNetConfig:
        """The architecture of the loaded model (its `image_size` is the crop size it needs)."""
        return self._config

    @property
    def device(self) -> str:
        """The device chosen at construction ('cpu', 'cuda', 'cuda:1' ...)."""
        return str(self._device)

    @property
    def mode(self) -> str:
        """The numerics mode in effect ('exact' or 'fast'), recorded with every job."""
        return str(self._mode)

    @property
    def dtype(self) -> str:
        """The low-precision dtype of the decoder in fast mode ('bfloat16', 'float16'), else 'float32'."""
        return str(self._dtype).removeprefix("torch.")

    @property
    def threads(self) -> int:
        """Intra-op CPU threads torch uses in this process (set by the worker, e.g. `torch.set_num_threads`)."""
        return torch.get_num_threads()

    @property
    def batch_size(self) -> int:
        """Driving frames per forward pass."""
        return self._batch_size

    def render(
        self,
        source_crop: np.ndarray,
        driving_frames: Iterable[np.ndarray],
        *,
        seed: int,
        relative: bool = True,
    ) -> Iterator[np.ndarray]:
        """Animate a portrait crop; frames are yielded as they are made (the driving clip is never held whole).

        Args:
            source_crop: (S, S, 3) uint8 RGB face crop, S = `config.image_size`.
            driving_frames: iterable of (S, S, 3) uint8 RGB driving crops, consumed in batches.
            seed: the memory-noise seed; the same inputs, checkpoint, mode, device and seed give the same frames.
            relative: relative motion with movement-scale adaptation (the authors' demo), or absolute.

        Returns:
            Iterator of (S, S, 3) uint8 RGB frames, one per driving frame.

        Raises:
            AnimationInputError: at call time for a bad source; during iteration for a bad driving frame
                or an empty driving sequence.
        """
        size = self._config.image_size
        source = _to_tensor(_check_frame(source_crop, size=size, name="source crop"))
        tensors = (
            _to_tensor(_check_frame(frame, size=size, name=f"driving frame {index}"))
            for index, frame in enumerate(driving_frames)
        )
        try:
            stream = animate(
                self._model,
                source,
                tensors,
                relative=relative,
                adapt_movement_scale=relative,
                seed=seed,
                batch_size=self._batch_size,
                mode=self._mode,
                as_uint8=True,
            )
        except (InputShapeError, InputValueError) as exc:
            raise AnimationInputError(str(exc)) from None
        return self._frames(stream)

    @staticmethod
    def _frames(stream: Iterator[torch.Tensor]) -> Iterator[np.ndarray]:
        try:
            for frame in stream:
                yield frame.numpy()
        except (InputShapeError, InputValueError) as exc:
            raise AnimationInputError(str(exc)) from None
