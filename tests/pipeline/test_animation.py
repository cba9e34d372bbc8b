"""PortraitAnimator: loads once, renders uint8 frames lazily, refuses bad input and bad checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import pipeline.animation
from pipeline.animation import AnimationInputError, ModelUnavailable, PortraitAnimator
from pipeline.errors import InputError, PermanentError
from tests.fixtures.model import TinyCheckpoint


@pytest.fixture(scope="module")
def animator(tiny_checkpoint: TinyCheckpoint) -> PortraitAnimator:
    return PortraitAnimator(
        tiny_checkpoint.path, expected_sha256=tiny_checkpoint.sha256, device="cpu", batch_size=3
    )


def _crop(seed: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


class CountingClip:
    """An endless driving clip that counts the frames pulled from it."""

    def __init__(self) -> None:
        self.pulled = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            self.pulled += 1
            yield _crop(self.pulled)


def test_properties(animator: PortraitAnimator, tiny_checkpoint: TinyCheckpoint) -> None:
    assert animator.fingerprint == tiny_checkpoint.sha256
    assert animator.config == tiny_checkpoint.config
    assert animator.device == "cpu"
    assert animator.mode == "exact"
    assert animator.batch_size == 3
    assert animator.dtype == "float32"
    assert animator.threads == torch.get_num_threads()
    assert PortraitAnimator(tiny_checkpoint.path, device="cpu").batch_size == 1


def test_fast_mode_is_close_to_exact(animator: PortraitAnimator, tiny_checkpoint: TinyCheckpoint) -> None:
    fast = PortraitAnimator(tiny_checkpoint.path, device="cpu", mode="fast", batch_size=3)
    driving = [_crop(i) for i in range(1, 4)]
    exact_frames = np.stack(list(animator.render(_crop(0), driving, seed=4))).astype(np.float64)
    fast_frames = np.stack(list(fast.render(_crop(0), driving, seed=4))).astype(np.float64)
    if fast.mode == "exact":
        # No fast path on this CPU (bf16 needs AMX): fell back to exact, in float32.
        assert fast.dtype == "float32" and np.array_equal(exact_frames, fast_frames)
        return
    assert fast.dtype in ("bfloat16", "float16")
    mse = np.mean((exact_frames / 255 - fast_frames / 255) ** 2)
    assert fast.mode == "fast"
    assert 0 < mse and 10 * np.log10(1 / mse) > 35


def test_render_yields_uint8_frames_lazily(animator: PortraitAnimator) -> None:
    clip = CountingClip()
    frames = animator.render(_crop(0), clip, seed=7)
    assert clip.pulled == 0
    first = next(frames)
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8
    assert clip.pulled == 3
    for _ in range(3):
        next(frames)
    assert clip.pulled == 6


def test_render_is_deterministic_for_a_seed(animator: PortraitAnimator) -> None:
    driving = [_crop(i) for i in range(1, 5)]
    a = np.stack(list(animator.render(_crop(0), driving, seed=11)))
    b = np.stack(list(animator.render(_crop(0), iter(driving), seed=11)))
    assert a.shape == (4, 64, 64, 3)
    assert np.array_equal(a, b)


def test_absolute_and_relative_differ(animator: PortraitAnimator) -> None:
    driving = [_crop(i) for i in range(1, 4)]
    relative = np.stack(list(animator.render(_crop(0), driving, seed=1)))
    absolute = np.stack(list(animator.render(_crop(0), driving, seed=1, relative=False)))
    assert not np.array_equal(relative, absolute)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (np.zeros((32, 32, 3), np.uint8), "source crop must be 64x64, got 32x32"),
        (np.zeros((64, 64, 4), np.uint8), r"source crop must have shape \(H, W, 3\), got \(64, 64, 4\)"),
        (np.zeros((64, 64), np.uint8), r"source crop must have shape \(H, W, 3\)"),
        (np.zeros((64, 64, 3), np.float32), "source crop must be uint8 RGB, got dtype float32"),
        ("portrait.png", "source crop must be a numpy array, got str"),
    ],
)
def test_bad_source_is_refused_before_any_work(
    animator: PortraitAnimator, source: object, message: str
) -> None:
    clip = CountingClip()
    with pytest.raises(AnimationInputError, match=message) as caught:
        animator.render(source, clip, seed=1)  # type: ignore[arg-type]
    assert isinstance(caught.value, InputError)
    assert clip.pulled == 0


def test_bad_driving_frame_stops_the_stream(animator: PortraitAnimator) -> None:
    driving = [_crop(1), _crop(2), _crop(3), np.zeros((64, 64, 3), np.uint16)]
    frames = animator.render(_crop(0), driving, seed=1)
    made = [next(frames), next(frames), next(frames)]
    with pytest.raises(AnimationInputError, match="driving frame 3 must be uint8 RGB, got dtype uint16"):
        next(frames)
    assert len(made) == 3


def test_empty_driving_is_refused(animator: PortraitAnimator) -> None:
    with pytest.raises(AnimationInputError, match="driving sequence is empty"):
        list(animator.render(_crop(0), [], seed=1))


def test_bad_seed_is_refused(animator: PortraitAnimator) -> None:
    with pytest.raises(AnimationInputError, match="`seed` must be an int"):
        animator.render(_crop(0), [_crop(1)], seed=-5)


def test_sha256_mismatch_is_a_permanent_error(tiny_checkpoint: TinyCheckpoint) -> None:
    with pytest.raises(ModelUnavailable, match="sha256 mismatch") as caught:
        PortraitAnimator(tiny_checkpoint.path, expected_sha256="f" * 64, device="cpu")
    assert isinstance(caught.value, PermanentError)


def test_corrupt_checkpoint_is_a_permanent_error(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelUnavailable, match="not a readable torch checkpoint"):
        PortraitAnimator(path, device="cpu")


def test_unknown_device_or_mode_is_refused(tiny_checkpoint: TinyCheckpoint) -> None:
    with pytest.raises(ModelUnavailable, match="unknown device `tpu`"):
        PortraitAnimator(tiny_checkpoint.path, device="tpu")
    with pytest.raises(ModelUnavailable, match="'turbo'"):
        PortraitAnimator(tiny_checkpoint.path, device="cpu", mode="turbo")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_refused(tiny_checkpoint: TinyCheckpoint) -> None:
    with pytest.raises(ModelUnavailable, match="CUDA is not available"):
        PortraitAnimator(tiny_checkpoint.path, device="cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_render_matches_cpu(tiny_checkpoint: TinyCheckpoint, animator: PortraitAnimator) -> None:
    gpu = PortraitAnimator(tiny_checkpoint.path, device="cuda", batch_size=3)
    driving = [_crop(i) for i in range(1, 4)]
    a = np.stack(list(animator.render(_crop(0), driving, seed=2))).astype(int)
    b = np.stack(list(gpu.render(_crop(0), driving, seed=2))).astype(int)
    assert np.abs(a - b).max() <= 1


def test_portrait_animator_applies_it_on_cpu(
    monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: TinyCheckpoint
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(pipeline.animation, "retain_freed_memory", lambda: calls.append(True) or True)
    PortraitAnimator(tiny_checkpoint.path, device="cpu")
    assert calls == [True]
