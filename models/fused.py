"""Exact rewrites of reference operations that do the same arithmetic with less work.

Each gives the reference's result up to float rounding (about 1e-6 relative in float32), keep the
authors' parameters untouched (the checkpoint still loads strictly) and are differentiable, so training
uses them too. `set_fused_kernels(model, False)` restores the reference arithmetic op for op; the
benchmark's "authors' loop" runs that way.

* `upsample_conv3x3`: nearest x2 up-sampling followed by a 3x3 convolution (the UpBlock) equals four
  2x2 convolutions of the low-resolution input, one per output phase, whose kernels are sums of the 3x3
  taps that land on the same low-resolution pixel. 16 instead of 36 multiply-adds per output pixel and
  input channel, and the 4x larger up-sampled map is never materialised.
* `pointwise_linear`: a 1x1 convolution as one matrix multiply over pixels-major rows, which BLAS
  runs faster than oneDNN's 1x1 path on NCHW maps.
* `composed_pointwise_linear`: two 1x1 convolutions in a row are one 1x1 convolution with the product
  of their weights. The memory unit's query and diff convs read the projected feature (512 channels)
  made from 64-256 channels; composing reads the narrow input directly (8x fewer multiply-adds at the
  128x128 scale). `MemoryUnit._compensate_fused` lists the other rewrites of the memory step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _phase_taps(weight: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Collapse the 3 taps along `dim` into 2 for output phase 0 ([w0, w1+w2]) and phase 1 ([w0+w1, w2])."""
    w0, w1, w2 = weight.unbind(dim)
    return torch.stack((w0, w1 + w2), dim), torch.stack((w0 + w1, w2), dim)


def upsample_conv3x3(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """`conv2d(interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1)`, computed at low resolution.

    Output pixel (2i+a, 2j+b) sees low-resolution rows (i-1, i) for a = 0 and (i, i+1) for a = 1 (the same
    for columns), so one 2x2 convolution of the input padded by one pixel, with 4*out channels (one
    kernel per phase), gives every phase; the phases are then interleaved into the 2x larger output.

    Args:
        x: (B, C_in, H, W).
        weight: (C_out, C_in, 3, 3).
        bias: (C_out,) or None.

    Returns:
        (B, C_out, 2H, 2W), contiguous.
    """
    out_channels = weight.shape[0]
    rows = _phase_taps(weight, 2)  # each (C_out, C_in, 2, 3)
    kernels = [column for row in rows for column in _phase_taps(row, 3)]  # phases (0,0) (0,1) (1,0) (1,1)
    phases = F.conv2d(
        F.pad(x, (1, 1, 1, 1)), torch.cat(kernels, 0), None if bias is None else bias.repeat(4)
    )  # (B, 4*C_out, H+1, W+1)
    batch, _, height, width = x.shape
    phases = phases.view(batch, 2, 2, out_channels, height + 1, width + 1)
    out = phases.new_empty(batch, out_channels, height, 2, width, 2)
    for a in (0, 1):
        for b in (0, 1):
            out[:, :, :, a, :, b] = phases[:, a, b, :, a : a + height, b : b + width]
    return out.view(batch, out_channels, 2 * height, 2 * width)


def pointwise_linear(rows: Tensor, conv: nn.Conv2d) -> Tensor:
    """A 1x1 convolution on pixels-major rows: (B, P, C_in) -> (B, P, C_out)."""
    bias = None if conv.bias is None else conv.bias.to(rows.dtype)
    return F.linear(rows, conv.weight.flatten(1).to(rows.dtype), bias)


def composed_pointwise_linear(rows: Tensor, outer: nn.Conv2d, inner: nn.Conv2d) -> Tensor:
    """`outer(inner(.))` for two 1x1 convolutions on pixels-major rows, as one: W = W_o W_i, b = W_o b_i + b_o.

    The product is formed in float32 (C_out x C_in, tiny next to the pixels it saves).
    """
    w_outer = outer.weight.flatten(1).float()
    weight = w_outer @ inner.weight.flatten(1).float()
    bias = None
    if inner.bias is not None:
        bias = w_outer @ inner.bias.float()
    if outer.bias is not None:
        bias = outer.bias.float() if bias is None else bias + outer.bias.float()
    return F.linear(rows, weight.to(rows.dtype), None if bias is None else bias.to(rows.dtype))


def set_fused_kernels(model: nn.Module, enabled: bool) -> nn.Module:
    """Switch every module with a `fused` flag (UpBlock2d, MemoryUnit) to the rewrites or back; returns `model`."""
    for module in model.modules():
        if hasattr(module, "fused"):
            # nn.Module.__setattr__ is typed for tensors and submodules only; `fused` is a plain bool flag.
            module.fused = enabled  # type: ignore[assignment]
    return model
