"""Streaming animation: one source, a driving sequence of any length, frames out as they are made.

The source's keypoints and encoder maps are computed once per job; driving frames are pulled in batches
of `batch_size` (never the whole clip), and each frame's three memory-noise maps come from one seeded
CPU generator in frame order, so the same seed gives the same frames for any batch size or device.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
from collections.abc import Iterable, Iterator
from enum import StrEnum

import torch
from torch import Tensor, nn

from models.errors import ConfigError, InputShapeError, InputValueError
from models.keypoint_detector import KeypointOutput
from models.keypoints import movement_scale, normalize_keypoints
from models.mcnet import MCNet

logger = logging.getLogger(__name__)

MAX_SEED = 2**63 - 1


class Mode(StrEnum):
    """Numerics of a render, recorded with each job.

    EXACT: float32 throughout, within 1e-4 of the reference (the fused kernels reorder sums; see models.fused).
    FAST: the decoder and memory unit in bf16 (CPUs with AMX, or CUDA; fp16 on CUDA devices without
    bf16); keypoints, source encoding, dense motion and every warp stay float32.
    """

    EXACT = "exact"
    FAST = "fast"


def resolve_device(name: str | torch.device) -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cpu'; 'cuda' (refused when CUDA is absent)."""
    text = str(name)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device `{text}` requested but CUDA is not available")
        return torch.device(text)
    if text == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"unknown device `{text}` (expected auto, cpu or cuda)")


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN reports native bf16 instructions (AVX512-BF16 or AMX) on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_has_amx() -> bool:
    """True when the CPU exposes AMX tiles (oneDNN then runs bf16 convolutions and GEMMs on the matrix unit)."""
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def fast_dtype(device: torch.device) -> torch.dtype | None:
    """The low-precision dtype of FAST mode on `device`, or None when the device has no fast low precision.

    On CPUs bf16 only pays with AMX: with AVX512-BF16 alone oneDNN's bf16 convolutions measured 0.65x the
    float32 ones and a whole bf16 frame 1.5x slower than exact mode (docs/mcnet.md, Speed), so FAST falls
    back to EXACT there.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16() and cpu_has_amx():
        return torch.bfloat16
    return None


def effective_mode(mode: Mode | str, device: torch.device) -> Mode:
    """FAST falls back to EXACT (logged) where the device has no fast low-precision path."""
    mode = Mode(mode)
    if mode is Mode.FAST and fast_dtype(device) is None:
        logger.warning("fast mode is not available on %s (no bf16/fp16 path); using exact mode", device)
        return Mode.EXACT
    return mode


def use_channels_last(model: MCNet) -> MCNet:
    """Store every 4-D conv weight channels-last (NHWC), in place; returns the model.

    oneDNN (CPU) and cuDNN tensor cores work natively in NHWC, and a conv whose weight is channels-last
    propagates that layout to its output, so activations follow without reorders. The authors' demo
    runs channels-last too (its inputs are NHWC arrays permuted to NCHW views). The 5-D weights of the
    modulated and dynamic convolutions stay as they are (they are reshaped per call anyway).
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
    return model


def use_low_precision(model: MCNet, dtype: torch.dtype) -> MCNet:
    """Convert the decoder and memory unit to `dtype` (bf16/fp16) once, in place, for FAST mode.

    Autocast would re-cast 90 M weights on every forward (15 % of a bf16 frame on CPU); converting once
    avoids that. The keypoint detector, the encoder (run once per job) and the dense motion network stay
    float32, and so does every warp: `Generator.forward` casts at that boundary.
    """
    generator = model.generator
    for module in (generator.up_blocks, generator.resblock, generator.final, generator.mbUnit):
        module.to(dtype)
    return model


def decoder_dtype(model: MCNet) -> torch.dtype:
    """The dtype the generator's decoder holds (float32 unless `use_low_precision` was applied)."""
    return model.generator.final.weight.dtype


def check_image(image: Tensor, *, size: int, channels: int, name: str) -> Tensor:
    """Validate one frame: (C, H, W) or (1, C, H, W), floating, finite, in [0, 1]; returns (C, H, W)."""
    if not isinstance(image, Tensor):
        raise InputShapeError(f"`{name}` must be a torch.Tensor, got {type(image).__name__}")
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3:
        raise InputShapeError(
            f"`{name}` must have shape ({channels}, {size}, {size}), got {tuple(image.shape)}"
        )
    if image.shape[0] != channels:
        raise InputShapeError(f"`{name}` must have {channels} channels, got {image.shape[0]}")
    if tuple(image.shape[1:]) != (size, size):
        raise InputShapeError(f"`{name}` must be {size}x{size}, got {image.shape[1]}x{image.shape[2]}")
    if not image.is_floating_point():
        raise InputShapeError(f"`{name}` must be a floating tensor in [0, 1], got {image.dtype}")
    if not bool(torch.isfinite(image).all()):
        raise InputValueError(f"`{name}` contains NaN or inf")
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > 1:
        raise InputValueError(f"`{name}` values must lie in [0, 1], got [{low:.3g}, {high:.3g}]")
    return image


def to_uint8(frames: Tensor) -> Tensor:
    """(B, C, H, W) float in [0, 1] -> (B, H, W, C) uint8 on the CPU, rounded to nearest (one host copy)."""
    return (frames.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu()


class Animation(Iterator[Tensor]):
    """The frames of one job, made lazily; `seed` is the noise seed (for the audit record)."""

    def __init__(self, frames: Iterator[Tensor], *, seed: int, mode: Mode) -> None:
        self._frames = frames
        self.seed = seed
        self.mode = mode
        self.frames_made = 0

    def __iter__(self) -> Animation:
        return self

    def __next__(self) -> Tensor:
        frame = next(self._frames)
        self.frames_made += 1
        return frame


def animate(
    model: MCNet,
    source: Tensor,
    driving_frames: Iterable[Tensor],
    *,
    relative: bool = True,
    adapt_movement_scale: bool = True,
    seed: int | None = None,
    batch_size: int = 4,
    mode: Mode | str | None = None,
    as_uint8: bool = False,
) -> Animation:
    """Animate `source` with the motion of `driving_frames`, streaming.

    Args:
        model: networks on their device (eval mode); the device is taken from its parameters.
        source: (3, H, W) or (1, 3, H, W) float in [0, 1] at `model.config.image_size`.
        driving_frames: any iterable of frames like `source`; consumed `batch_size` at a time.
        relative: transfer relative motion (the authors' demo) instead of absolute keypoints.
        adapt_movement_scale: scale relative motion by the source/driving keypoint hull sizes.
        seed: noise seed; drawn at random when None. The seed used is `Animation.seed`.
        batch_size: driving frames per forward pass.
        mode: EXACT (float32) or FAST (low precision where the device supports it: autocast on float32
            weights, or the decoder converted once by `use_low_precision`). None: FAST for a converted
            model, else EXACT.
        as_uint8: yield (H, W, 3) uint8 CPU tensors (converted batch-wise) instead of (3, H, W) floats.

    Returns:
        Animation: an iterator of frames in driving order.

    Raises:
        InputShapeError, InputValueError: bad source at call time, bad driving frame or an empty driving
            sequence when iteration reaches it.
    """
    config = model.config
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
    if seed is None:
        seed = secrets.randbelow(MAX_SEED)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InputValueError(f"`seed` must be an int in [0, 2**63 - 1], got {seed!r}")
    source = check_image(source, size=config.image_size, channels=config.num_channels, name="source")
    # The keypoint head holds the model's input dtype (float32 unless the whole model was cast), whatever
    # the first parameter is; fast mode holds only the decoder and memory unit in bf16/fp16.
    head = model.kp_detector.kp.weight
    device, dtype = head.device, head.dtype
    if decoder_dtype(model) != dtype:
        # The decoder was converted once for FAST mode (use_low_precision): it cannot render exactly.
        if mode is not None and Mode(mode) is Mode.EXACT:
            raise ConfigError(
                "exact mode needs float32 decoder weights; this model was converted to low precision"
            )
        chosen = Mode.FAST
    else:
        chosen = effective_mode(Mode.EXACT if mode is None else mode, device)
    frames = _frames(
        model,
        source.to(device=device, dtype=dtype).unsqueeze(0),
        iter(driving_frames),
        relative=relative,
        adapt_movement_scale=adapt_movement_scale,
        seed=seed,
        batch_size=batch_size,
        mode=chosen,
        as_uint8=as_uint8,
    )
    return Animation(frames, seed=seed, mode=chosen)


def _frames(
    model: MCNet,
    source: Tensor,
    driving: Iterator[Tensor],
    *,
    relative: bool,
    adapt_movement_scale: bool,
    seed: int,
    batch_size: int,
    mode: Mode,
    as_uint8: bool,
) -> Iterator[Tensor]:
    config = model.config
    device, dtype = source.device, source.dtype
    # Autocast only when the weights are float32; a converted decoder already runs in low precision.
    low = fast_dtype(device) if mode is Mode.FAST and decoder_dtype(model) == dtype else None
    rng = torch.Generator().manual_seed(seed)
    index = 0
    kp_initial: KeypointOutput | None = None
    scale = 1.0
    # Grad mode is thread-local state: every `inference_mode` block closes before a `yield`, so the
    # consumer of this generator never runs inside it.
    with torch.inference_mode():
        kp_source = model.kp_detector(source)
        encoding = model.generator.encode_source(source)
    while True:
        chunk = list(itertools.islice(driving, batch_size))
        if not chunk:
            break
        with torch.inference_mode():
            checked = [
                check_image(
                    frame,
                    size=config.image_size,
                    channels=config.num_channels,
                    name=f"driving frame {index + i}",
                )
                for i, frame in enumerate(chunk)
            ]
            batch = torch.stack(checked).to(device=device, dtype=dtype, non_blocking=True)
            del chunk, checked
            kp_driving = model.kp_detector(batch)
            if kp_initial is None:
                jacobian = None if kp_driving.jacobian is None else kp_driving.jacobian[:1]
                kp_initial = KeypointOutput(value=kp_driving.value[:1], jacobian=jacobian)
                if relative and adapt_movement_scale:
                    scale = movement_scale(kp_source, kp_initial)
            kp_norm = normalize_keypoints(kp_source, kp_driving, kp_initial, relative=relative, scale=scale)
            noise = model.generator.draw_noise(batch.shape[0], rng=rng)
            autocast = (
                torch.autocast(device_type=device.type, dtype=low)
                if low is not None
                else contextlib.nullcontext()
            )
            with autocast:
                prediction = model.generator(
                    source, kp_norm, kp_source, noise=noise, encoding=encoding
                ).prediction
            frames = to_uint8(prediction) if as_uint8 else prediction.float()
            del batch, prediction
        yield from frames
        index += frames.shape[0]
    if index == 0:
        raise InputValueError("the driving sequence is empty: no frame to animate")
