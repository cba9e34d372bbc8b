"""The fused kernels compute what the reference operations compute, forward and backward.

Each rewrite is compared with the reference op it replaces on random inputs, and the whole generator
with every rewrite on is compared with the reference arithmetic (`set_fused_kernels(model, False)`).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import UpBlock2d
from models.fused import composed_pointwise_linear, pointwise_linear, set_fused_kernels, upsample_conv3x3
from models.memory import MemoryUnit
from tests.fixtures.model import build_tiny_model


@pytest.mark.parametrize(("channels", "out", "height", "width"), [(8, 5, 6, 6), (4, 3, 5, 7), (16, 16, 1, 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_upsample_conv3x3_matches_nearest_then_conv(
    channels: int, out: int, height: int, width: int, bias: bool
) -> None:
    g = torch.Generator().manual_seed(channels + height)
    x = torch.randn(2, channels, height, width, generator=g)
    weight = torch.randn(out, channels, 3, 3, generator=g)
    b = torch.randn(out, generator=g) if bias else None
    expected = F.conv2d(F.interpolate(x, scale_factor=2), weight, b, padding=1)
    got = upsample_conv3x3(x, weight, b)
    assert got.shape == expected.shape == (2, out, 2 * height, 2 * width)
    assert got.is_contiguous()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_upsample_conv3x3_gradients_match() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 6, 5, 5, generator=g)
    weight = torch.randn(4, 6, 3, 3, generator=g)
    bias = torch.randn(4, generator=g)
    grads = []
    for fn in (
        lambda *a: F.conv2d(F.interpolate(a[0], scale_factor=2), a[1], a[2], padding=1),
        upsample_conv3x3,
    ):
        inputs = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
        (fn(*inputs) ** 2).sum().backward()
        grads.append([t.grad for t in inputs])
    for reference, fused in zip(*grads, strict=True):
        torch.testing.assert_close(fused, reference, atol=1e-4, rtol=1e-5)


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])


def test_pointwise_linear_matches_conv2d_on_strided_input() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 10, kernel_size=1)
    x = torch.randn(3, 12, 7, 5)[:, 1::2]  # the memory unit's odd channels: a strided view
    torch.testing.assert_close(pointwise_linear(_rows(x), conv), _rows(conv(x)), atol=1e-5, rtol=1e-5)
    conv.bias = None
    torch.testing.assert_close(pointwise_linear(_rows(x), conv), _rows(conv(x)), atol=1e-5, rtol=1e-5)


def test_composed_pointwise_linear_is_two_convs_in_a_row() -> None:
    torch.manual_seed(1)
    inner, outer = nn.Conv2d(4, 9, kernel_size=1), nn.Conv2d(9, 7, kernel_size=1)
    x = torch.randn(2, 4, 6, 6)
    expected = _rows(outer(inner(x)))
    torch.testing.assert_close(
        composed_pointwise_linear(_rows(x), outer, inner), expected, atol=1e-5, rtol=1e-5
    )


def test_memory_unit_fused_matches_reference_forward_and_backward() -> None:
    model = build_tiny_model()
    unit = model.generator.mbUnit
    g = torch.Generator().manual_seed(2)
    width = unit.widths[-1]
    channels = getattr(unit, f"feat_forward_proj_{width}").in_channels * 2
    feature = torch.randn(2, channels, width, width, generator=g)
    keypoints = torch.rand(2, model.config.num_kp, 2, generator=g) * 2 - 1
    noise = torch.randn(unit.noise_shape(2), generator=g)
    results = []
    for fused in (False, True):
        unit.fused = fused
        unit.zero_grad()
        inputs = feature.clone().requires_grad_(True)
        out = unit(inputs, keypoints, noise)
        (out.output.square().sum() + out.value.sum()).backward()
        results.append((out, inputs.grad, unit.diff_conv.weight.grad.clone()))
    unit.fused = True
    (ref, ref_grad, ref_wgrad), (got, got_grad, got_wgrad) = results
    torch.testing.assert_close(got.output, ref.output, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.feature, ref.feature, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.value, ref.value, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_grad, ref_grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_wgrad, ref_wgrad, atol=1e-4, rtol=1e-4)
    assert ref_wgrad.abs().sum() > 0


def test_set_fused_kernels_switches_every_flagged_module() -> None:
    model = build_tiny_model()
    flagged = [m for m in model.modules() if isinstance(m, (UpBlock2d, MemoryUnit))]
    assert flagged and all(m.fused for m in flagged)
    set_fused_kernels(model, False)
    assert not any(m.fused for m in flagged)
    set_fused_kernels(model, True)
    assert all(m.fused for m in flagged)


def test_generator_with_fused_kernels_matches_the_reference_arithmetic() -> None:
    model = build_tiny_model()
    g = torch.Generator().manual_seed(11)
    source, driving = torch.rand(1, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)

    def render() -> torch.Tensor:
        with torch.inference_mode():
            kp_source, kp_driving = model.kp_detector(source), model.kp_detector(driving)
            return model.generator(
                source, kp_driving, kp_source, rng=torch.Generator().manual_seed(5)
            ).prediction

    fused = render()
    set_fused_kernels(model, False)
    try:
        reference = render()
    finally:
        set_fused_kernels(model, True)
    assert not torch.equal(fused, torch.zeros_like(fused))
    assert (fused - reference).abs().max().item() < 1e-5
