"""The small building blocks shared by the three MCNet networks (FOMM conventions, eval-exact).

Attribute names (`conv`, `norm`, `conv1`, `norm2`, `down_blocks`, `weight` ...) are the authors' names,
so their checkpoint loads with `strict=True` without any key surgery.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.fused import upsample_conv3x3


def _cast(tensor: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if tensor is None else tensor.to(dtype)


def make_coordinate_grid(height: int, width: int, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A (height, width, 2) grid of (x, y) in [-1, 1], ends included (the align_corners=True convention).

    Built with the same arithmetic as the reference (`2 * (i / (n - 1)) - 1`) so values agree bit for bit.
    """
    x = torch.arange(width, device=device).to(dtype)
    y = torch.arange(height, device=device).to(dtype)
    x = 2 * (x / (width - 1)) - 1
    y = 2 * (y / (height - 1)) - 1
    yy = y.view(-1, 1).repeat(1, width)
    xx = x.view(1, -1).repeat(height, 1)
    return torch.cat([xx.unsqueeze(2), yy.unsqueeze(2)], 2)


def keypoint_heatmaps(value: Tensor, height: int, width: int, variance: float) -> Tensor:
    """Gaussian blobs around keypoints.

    Args:
        value: (B, K, 2) keypoints (x, y) in [-1, 1].
        height, width: size of the output maps.
        variance: Gaussian variance in normalised coordinates.

    Returns:
        (B, K, height, width) maps, exp(-0.5 * |z - kp|^2 / variance).
    """
    grid = make_coordinate_grid(height, width, dtype=value.dtype, device=value.device)
    lead = value.shape[:-1]
    grid = grid.view((1,) * len(lead) + grid.shape).repeat(*lead, 1, 1, 1)
    mean = value.view(*lead, 1, 1, 2)
    diff = grid - mean
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


class SameBlock2d(nn.Module):
    """conv -> BatchNorm -> ReLU at constant resolution."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock2d(nn.Module):
    """conv3x3 -> BatchNorm -> ReLU -> 2x2 average pool (the conv runs at the input resolution)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class UpBlock2d(nn.Module):
    """Nearest x2 up-sampling -> conv3x3 -> BatchNorm -> ReLU (nearest, as the reference; not bilinear).

    With `fused` (the default) the up-sampling and the conv run as one low-resolution convolution
    (`models.fused.upsample_conv3x3`, 2.25x fewer multiply-adds, same result up to rounding) on maps of
    at least 32x32. Below that the per-call kernel combination (passes over weights of up to 2048x1024x3x3
    in the hourglasses) costs more than the convolution it saves.
    """

    FUSED_MIN_PIXELS = 32 * 32

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.fused = True

    def forward(self, x: Tensor) -> Tensor:
        if self.fused and x.shape[-2] * x.shape[-1] >= self.FUSED_MIN_PIXELS:
            out = upsample_conv3x3(x, self.conv.weight.to(x.dtype), _cast(self.conv.bias, x.dtype))
        else:
            out = self.conv(F.interpolate(x, scale_factor=2))
        return F.relu(self.norm(out))


class ResBlock2d(nn.Module):
    """Pre-activation residual block: BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv3x3, plus the input."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.norm1 = nn.BatchNorm2d(features, affine=True)
        self.norm2 = nn.BatchNorm2d(features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class Encoder(nn.Module):
    """Hourglass encoder: `num_blocks` DownBlocks; returns the input and every block's output."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                in_features if i == 0 else min(max_features, block_expansion * 2**i),
                min(max_features, block_expansion * 2 ** (i + 1)),
            )
            for i in range(num_blocks)
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """Hourglass decoder: UpBlocks with skip concatenation; ends at `block_expansion + in_features` channels."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            in_filters = (1 if i == num_blocks - 1 else 2) * min(max_features, block_expansion * 2 ** (i + 1))
            out_filters = min(max_features, block_expansion * 2**i)
            blocks.append(UpBlock2d(in_filters, out_filters))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, skips: list[Tensor]) -> Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net style hourglass used by the keypoint detector and the dense-motion network."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


class AntiAliasInterpolation2d(nn.Module):
    """Band-limited down-sampling: Gaussian blur (buffer `weight`), then keep every n-th pixel.

    For scale 1/4: sigma 1.5, a 13x13 kernel normalised to sum 1, zero padding 6, `[::4, ::4]`.
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        sigma = (1 / scale - 1) / 2
        kernel_size = 2 * round(sigma * 4) + 1
        self.ka = kernel_size // 2
        self.kb = self.ka - 1 if kernel_size % 2 == 0 else self.ka
        grids = torch.meshgrid(
            [torch.arange(kernel_size, dtype=torch.float32) for _ in range(2)], indexing="ij"
        )
        kernel = torch.ones(())
        for grid in grids:
            mean = (kernel_size - 1) / 2
            kernel = kernel * torch.exp(-((grid - mean) ** 2) / (2 * sigma**2))
        kernel = kernel / torch.sum(kernel)
        kernel = kernel.view(1, 1, kernel_size, kernel_size).repeat(channels, 1, 1, 1)
        self.weight: Tensor
        self.register_buffer("weight", kernel)
        self.groups = channels
        self.step = round(1 / scale)

    def forward(self, x: Tensor) -> Tensor:
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        out = F.conv2d(out, weight=self.weight.to(out.dtype), groups=self.groups)
        return out[:, :, :: self.step, :: self.step]
