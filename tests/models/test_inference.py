"""Streaming inference: lazy batches, seeded determinism, relative/absolute modes, bad input refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from models.errors import InputShapeError, InputValueError
from models.inference import Mode, animate, effective_mode, fast_dtype, resolve_device
from models.keypoint_detector import KeypointOutput
from models.keypoints import convex_hull_area, movement_scale, normalize_keypoints
from models.mcnet import MCNet
from tests.fixtures.model import build_tiny_model


@pytest.fixture(scope="module")
def model() -> MCNet:
    return build_tiny_model()


def _frames(count: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, 64, 64, generator=g) for _ in range(count)]


class CountingFrames:
    """An endless driving clip that records how many frames were pulled from it."""

    def __init__(self) -> None:
        self.pulled = 0
        self._g = torch.Generator().manual_seed(3)

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            self.pulled += 1
            yield torch.rand(3, 64, 64, generator=self._g)


def test_frames_stream_batch_by_batch(model: MCNet) -> None:
    clip = CountingFrames()
    stream = animate(model, _frames(1)[0], clip, seed=1, batch_size=4)
    assert clip.pulled == 0  # nothing happens before the first frame is asked for
    first = next(stream)
    assert first.shape == (3, 64, 64)
    assert clip.pulled == 4  # one batch, not the (endless) clip
    for _ in range(4):
        next(stream)
    assert clip.pulled == 8 and stream.frames_made == 5


def test_one_frame_out_per_frame_in(model: MCNet) -> None:
    frames = list(animate(model, _frames(1)[0], iter(_frames(7)), seed=2, batch_size=3))
    assert len(frames) == 7
    assert all(f.shape == (3, 64, 64) and f.dtype == torch.float32 for f in frames)
    assert all(0 <= float(f.min()) and float(f.max()) <= 1 for f in frames)


def test_same_seed_same_frames_other_seed_other_frames(model: MCNet) -> None:
    source, driving = _frames(1)[0], _frames(5, seed=1)
    a = torch.stack(list(animate(model, source, driving, seed=42, batch_size=2)))
    b = torch.stack(list(animate(model, source, driving, seed=42, batch_size=2)))
    c = torch.stack(list(animate(model, source, driving, seed=43, batch_size=2)))
    assert torch.equal(a, b)
    assert (a - c).abs().max().item() > 1e-4


def test_batch_size_does_not_change_frames(model: MCNet) -> None:
    """Noise is drawn frame by frame, so batching only changes float summation order."""
    source, driving = _frames(1)[0], _frames(6, seed=2)
    one = torch.stack(list(animate(model, source, driving, seed=5, batch_size=1)))
    four = torch.stack(list(animate(model, source, driving, seed=5, batch_size=4)))
    assert (one - four).abs().max().item() < 1e-4


def test_seed_is_returned_and_drawn_when_absent(model: MCNet) -> None:
    assert animate(model, _frames(1)[0], _frames(1), seed=123).seed == 123
    drawn = animate(model, _frames(1)[0], _frames(1))
    assert isinstance(drawn.seed, int) and 0 <= drawn.seed < 2**63


def test_matches_a_per_frame_loop_like_the_authors_demo(model: MCNet) -> None:
    """Batched, cached inference equals recomputing everything per frame (same noise order)."""
    source, driving = _frames(1)[0], _frames(4, seed=4)
    ours = torch.stack(list(animate(model, source, driving, seed=9, batch_size=4)))
    rng = torch.Generator().manual_seed(9)
    expected = []
    with torch.no_grad():
        src = source[None]
        kp_source = model.kp_detector(src)
        kp_initial = model.kp_detector(driving[0][None])
        scale = movement_scale(kp_source, kp_initial)
        for frame in driving:
            kp_norm = normalize_keypoints(
                kp_source, model.kp_detector(frame[None]), kp_initial, relative=True, scale=scale
            )
            expected.append(model.generator(src, kp_norm, kp_source, rng=rng).prediction[0])
    assert (ours - torch.stack(expected)).abs().max().item() < 1e-4


def test_absolute_mode_uses_driving_keypoints(model: MCNet) -> None:
    source, driving = _frames(1)[0], _frames(3, seed=5)
    relative = torch.stack(list(animate(model, source, driving, seed=1, relative=True)))
    absolute = torch.stack(list(animate(model, source, driving, seed=1, relative=False)))
    assert (relative - absolute).abs().max().item() > 1e-4
    rng = torch.Generator().manual_seed(1)
    with torch.no_grad():
        kp = model.kp_detector(torch.stack(driving))
        expected = model.generator(
            source[None], kp, model.kp_detector(source[None]), noise=model.generator.draw_noise(3, rng=rng)
        ).prediction
    assert (absolute - expected).abs().max().item() < 1e-4


def test_uint8_output(model: MCNet) -> None:
    source, driving = _frames(1)[0], _frames(2, seed=6)
    floats = list(animate(model, source, driving, seed=1))
    ints = list(animate(model, source, driving, seed=1, as_uint8=True))
    assert ints[0].shape == (64, 64, 3) and ints[0].dtype == torch.uint8
    assert torch.equal(ints[1], (floats[1] * 255).round().to(torch.uint8).permute(1, 2, 0))


def test_fast_mode_stays_close_to_exact(model: MCNet) -> None:
    device = torch.device("cpu")
    if fast_dtype(device) is None:
        assert effective_mode(Mode.FAST, device) is Mode.EXACT
        pytest.skip(
            "no fast bf16 path on this CPU (needs AMX): fast mode falls back to exact; see test_fast_mode.py"
        )
    source, driving = _frames(1)[0], _frames(3, seed=7)
    exact = torch.stack(list(animate(model, source, driving, seed=1)))
    stream = animate(model, source, driving, seed=1, mode="fast")
    fast = torch.stack(list(stream))
    assert stream.mode is Mode.FAST
    mse = ((exact - fast) ** 2).mean().item()
    assert 0 < mse and 10 * torch.log10(torch.tensor(1 / mse)).item() > 35


def test_inference_mode_does_not_leak_to_the_consumer(model: MCNet) -> None:
    stream = animate(model, _frames(1)[0], _frames(2), seed=1)
    next(stream)
    assert not torch.is_inference_mode_enabled()
    assert torch.is_grad_enabled()


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        (torch.rand(3, 32, 32), InputShapeError, "must be 64x64, got 32x32"),
        (torch.rand(4, 64, 64), InputShapeError, "must have 3 channels, got 4"),
        (torch.rand(64, 64), InputShapeError, r"must have shape \(3, 64, 64\)"),
        (torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8), InputShapeError, "must be a floating tensor"),
        (torch.full((3, 64, 64), float("nan")), InputValueError, "contains NaN or inf"),
        (torch.full((3, 64, 64), float("inf")), InputValueError, "contains NaN or inf"),
        (torch.full((3, 64, 64), 255.0), InputValueError, r"values must lie in \[0, 1\], got \[255, 255\]"),
    ],
)
def test_bad_source_is_refused_at_call_time(
    model: MCNet, source: torch.Tensor, error: type, message: str
) -> None:
    clip = CountingFrames()
    with pytest.raises(error, match=f"`source` {message}"):
        animate(model, source, clip, seed=1)
    assert clip.pulled == 0


def test_bad_driving_frame_is_refused_with_its_index(model: MCNet) -> None:
    driving = _frames(5)
    driving[3] = torch.full((3, 64, 64), float("nan"))
    stream = animate(model, _frames(1)[0], driving, seed=1, batch_size=2)
    made = [next(stream), next(stream)]
    with pytest.raises(InputValueError, match="`driving frame 3` contains NaN or inf"):
        next(stream)
    assert len(made) == 2 and stream.frames_made == 2


def test_empty_driving_is_refused(model: MCNet) -> None:
    stream = animate(model, _frames(1)[0], [], seed=1)
    with pytest.raises(InputValueError, match="driving sequence is empty"):
        next(stream)
    assert stream.frames_made == 0


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"batch_size": 0}, "`batch_size`"), ({"seed": -1}, "`seed`")]
)
def test_bad_arguments_are_refused(model: MCNet, kwargs: dict, message: str) -> None:
    with pytest.raises(InputValueError, match=message):
        animate(model, _frames(1)[0], _frames(1), **{"seed": 1, **kwargs})


def test_device_resolution() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device `tpu`"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_convex_hull_area_and_movement_scale() -> None:
    square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.5, 0.5]])
    assert convex_hull_area(square) == pytest.approx(1.0)
    assert convex_hull_area(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])) == 0.0
    small = KeypointOutput(value=(square * 0.5)[None], jacobian=None)
    big = KeypointOutput(value=square[None], jacobian=None)
    assert movement_scale(small, big) == pytest.approx(0.5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(model: MCNet) -> None:
    source, driving = _frames(1)[0], _frames(3, seed=8)
    cpu = torch.stack(list(animate(model, source, driving, seed=3)))
    gpu_model = build_tiny_model().to("cuda")
    gpu = torch.stack(list(animate(gpu_model, source, driving, seed=3)))
    assert gpu.device.type == "cuda"
    assert (cpu - gpu.cpu()).abs().max().item() < 1e-4
    fast = torch.stack(list(animate(gpu_model, source, driving, seed=3, mode="fast")))
    mse = ((cpu - fast.float().cpu()) ** 2).mean().item()
    assert 10 * torch.log10(torch.tensor(1 / max(mse, 1e-12))).item() > 35


def test_converted_decoder_runs_fast_and_refuses_exact() -> None:
    from models.errors import ConfigError
    from models.inference import decoder_dtype, use_low_precision

    exact_model, converted = build_tiny_model(), use_low_precision(build_tiny_model(), torch.bfloat16)
    assert decoder_dtype(converted) == torch.bfloat16
    assert converted.generator.dense_motion_network.mask.weight.dtype == torch.float32  # flow stays fp32
    assert converted.generator.first.conv.weight.dtype == torch.float32  # encoder stays fp32
    source, driving = _frames(1)[0], _frames(3, seed=9)
    exact = torch.stack(list(animate(exact_model, source, driving, seed=2)))
    stream = animate(converted, source, driving, seed=2)  # a converted model is always fast
    fast = torch.stack(list(stream))
    assert stream.mode is Mode.FAST and fast.dtype == torch.float32
    mse = ((exact - fast) ** 2).mean().item()
    assert 0 < mse and 10 * torch.log10(torch.tensor(1 / mse)).item() > 35
    with pytest.raises(ConfigError, match="exact mode needs float32 decoder weights"):
        animate(converted, source, driving, seed=2, mode="exact")


def test_channels_last_changes_only_rounding(model: MCNet) -> None:
    from models.inference import use_channels_last

    source, driving = _frames(1)[0], _frames(2, seed=10)
    nchw = torch.stack(list(animate(model, source, driving, seed=2)))
    nhwc_model = use_channels_last(build_tiny_model())
    assert nhwc_model.generator.final.weight.is_contiguous(memory_format=torch.channels_last)
    nhwc = torch.stack(list(animate(nhwc_model, source, driving, seed=2)))
    assert (nchw - nhwc).abs().max().item() < 1e-4
