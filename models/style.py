"""StyleGAN2 pieces used by the memory unit: equalised linear, modulated conv with demodulation, StyleConv.

Only the non-resampling path is ported (the memory unit never up- or down-samples here).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class EqualLinear(nn.Module):
    """Linear layer with the weight scaled by 1/sqrt(in) at run time (equalised learning rate)."""

    def __init__(self, in_features: int, out_features: int, *, bias_init: float = 0.0) -> None:
        super().__init__()
        self.scale = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, bias=self.bias)


class ScaledLeakyReLU(nn.Module):
    """sqrt(2) * leaky_relu(x + bias, 0.2): StyleGAN2's FusedLeakyReLU, with its learned bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias.view((1, -1) + (1,) * (x.dim() - 2))
        return 2**0.5 * F.leaky_relu(x + bias, negative_slope=0.2)


class ModulatedConv2d(nn.Module):
    """Per-sample conv: weight * style, demodulated (rsqrt of the sum of squares + 1e-8), grouped by sample."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_features: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.padding = kernel_size // 2
        self.eps = 1e-8
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.modulation = EqualLinear(style_features, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        """Args: x (B, C_in, h, w); style (B, style_features). Returns (B, C_out, h, w)."""
        b, c, h, w = x.shape
        style = self.modulation(style).view(b, 1, c, 1, 1)
        weight = self.scale * self.weight * style  # (B, C_out, C_in, k, k)
        demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + self.eps)
        weight = weight * demod.view(b, self.out_channels, 1, 1, 1)
        weight = weight.view(b * self.out_channels, c, self.kernel_size, self.kernel_size)
        out = F.conv2d(x.reshape(1, b * c, h, w), weight, padding=self.padding, groups=b)
        return out.view(b, self.out_channels, *out.shape[2:4])


class StyleConv(nn.Module):
    """Modulated conv + noise injection (strength `weight`, zero at init) + scaled leaky ReLU with bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_features: int) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_features)
        self.weight = nn.Parameter(torch.zeros(1))
        self.activate = ScaledLeakyReLU(out_channels)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor) -> Tensor:
        """Args: x (B, C_in, h, w); style (B, S); noise (B, 1, h, w), one N(0, 1) draw per call."""
        out = self.modulated_conv(x, style)
        out = out + self.weight * noise
        return self.activate(out)
