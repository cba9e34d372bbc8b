"""Fast mode: when it engages (bf16 on CPUs only with AMX) and how far its frames may drift from exact mode.

The bf16 arithmetic itself runs on any CPU (slowly without AVX512-BF16/AMX), so its accuracy is checked
everywhere by converting the model explicitly, on random tiny weights and on the trained demo model
(random weights overstate low-precision accuracy).
"""

from __future__ import annotations

import copy
import itertools
import math
import shutil
from pathlib import Path

import pytest
import torch

from models import inference
from models.inference import Mode, animate, effective_mode, fast_dtype, use_low_precision
from models.loading import load_mcnet
from models.mcnet import MCNet
from pipeline.video.reader import iter_frames
from tests.fixtures.model import build_tiny_model

ROOT = Path(__file__).resolve().parents[2]
DEMO_CHECKPOINT = ROOT / "flows" / "demo" / "assets" / "mcnet_demo128.pth.tar"
DEMO_VIDEO = ROOT / "flows" / "demo" / "assets" / "talking_man_192.mp4"
HELD_OUT_FRAME = 300  # 12 s at 25 fps: the first frame the demo model never trained on
PSNR_FLOOR_DB = 35.0


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    assert mse > 0, "the low-precision path was not taken (frames identical to exact mode)"
    return 10 * math.log10(1 / mse)


def _exact_and_bf16(
    model: MCNet, source: torch.Tensor, driving: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    exact = torch.stack(list(animate(model, source, driving, seed=5, mode="exact")))
    converted = use_low_precision(copy.deepcopy(model), torch.bfloat16)
    stream = animate(converted, source, driving, seed=5)
    fast = torch.stack(list(stream))
    assert stream.mode is Mode.FAST
    return exact, fast


@pytest.mark.parametrize(("amx", "expected"), [(True, torch.bfloat16), (False, None)])
def test_cpu_fast_mode_needs_amx(
    monkeypatch: pytest.MonkeyPatch, amx: bool, expected: torch.dtype | None
) -> None:
    monkeypatch.setattr(inference, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(inference, "cpu_has_amx", lambda: amx)
    cpu = torch.device("cpu")
    assert fast_dtype(cpu) is expected
    assert effective_mode(Mode.FAST, cpu) is (Mode.FAST if amx else Mode.EXACT)


def test_bf16_frames_stay_above_the_psnr_floor_on_random_weights() -> None:
    model = build_tiny_model()
    g = torch.Generator().manual_seed(11)
    frames = [torch.rand(3, 64, 64, generator=g) for _ in range(4)]
    exact, fast = _exact_and_bf16(model, frames[0], frames[1:])
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    assert _psnr(exact, fast) > PSNR_FLOOR_DB


def _demo_frames(count: int, size: int) -> list[torch.Tensor]:
    """Held-out frames (from frame 300) of the demo model's training video, decoded by the product's reader."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    video = list(itertools.islice(iter_frames(DEMO_VIDEO, size=size), HELD_OUT_FRAME, HELD_OUT_FRAME + count))
    assert len(video) == count
    return [torch.from_numpy(frame.copy()).permute(2, 0, 1).float() / 255 for frame in video]


def test_bf16_frames_stay_above_the_psnr_floor_on_the_trained_demo_model() -> None:
    if not DEMO_CHECKPOINT.is_file():
        pytest.skip("demo checkpoint not present")
    model = load_mcnet(DEMO_CHECKPOINT).model
    frames = _demo_frames(4, model.config.image_size)
    exact, fast = _exact_and_bf16(model, frames[0], frames[1:])
    assert _psnr(exact, fast) > PSNR_FLOOR_DB
