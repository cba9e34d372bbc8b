"""Training augmentations of (source, driving) pairs, as the authors use them: flips and colour jitter.

Both frames of a pair get the same flip and the same colour change (they are one shot of one person);
the time flip swaps source and driving. Everything is torch, batched, and drawn from an explicit
`torch.Generator` so a resumed run draws the same augmentations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class AugmentationParams:
    """Probabilities and ranges (the vox-256 values by default).

    Attributes:
        horizontal_flip: probability of mirroring a pair left-right.
        time_flip: probability of swapping source and driving.
        brightness, contrast, saturation: factors drawn uniformly in [1 - x, 1 + x].
        hue: hue shift drawn uniformly in [-x, x] turns (x <= 0.5).
    """

    horizontal_flip: float = 0.5
    time_flip: float = 0.5
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.1


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _grey(image: Tensor) -> Tensor:
    """(B, 1, H, W) luma (ITU-R 601 weights)."""
    r, g, b = image.unbind(1)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def rgb_to_hsv(image: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> HSV in [0, 1] (hue in turns)."""
    r, g, b = image.unbind(1)
    maxc, _ = image.max(dim=1)
    minc, _ = image.min(dim=1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(
        maxc == r, ((g - b) / safe) % 6, torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    hue = torch.where(delta > 0, hue / 6, torch.zeros_like(hue))
    saturation = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), 0 * maxc)
    return torch.stack([hue, saturation, maxc], dim=1)


def hsv_to_rgb(image: Tensor) -> Tensor:
    """(B, 3, H, W) HSV in [0, 1] -> RGB in [0, 1]."""
    h, s, v = image.unbind(1)
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)
    ramp = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * ramp


def color_jitter(image: Tensor, factors: Tensor) -> Tensor:
    """Apply per-sample brightness, contrast, saturation and hue changes.

    Args:
        image: (B, 3, H, W) float in [0, 1].
        factors: (B, 4) = brightness, contrast, saturation factors and hue shift (turns).
    """
    view = (-1, 1, 1, 1)
    out = (image * factors[:, 0].view(view)).clamp(0, 1)
    mean = _grey(out).mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean) * factors[:, 1].view(view) + mean).clamp(0, 1)
    grey = _grey(out)
    out = ((out - grey) * factors[:, 2].view(view) + grey).clamp(0, 1)
    hsv = rgb_to_hsv(out)
    hue = (hsv[:, 0] + factors[:, 3].view(-1, 1, 1)) % 1.0
    return hsv_to_rgb(torch.stack([hue, hsv[:, 1], hsv[:, 2]], dim=1)).clamp(0, 1)


def augment_pair(
    source: Tensor, driving: Tensor, params: AugmentationParams, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Augment a batch of pairs consistently.

    Args:
        source, driving: (B, 3, H, W) float in [0, 1].
        params: what to draw.
        generator: the CPU random generator of the run.

    Returns:
        The augmented (source, driving), same shapes and range.
    """
    n = source.shape[0]
    swap = (torch.rand(n, generator=generator) < params.time_flip).view(-1, 1, 1, 1)
    source, driving = torch.where(swap, driving, source), torch.where(swap, source, driving)
    mirror = (torch.rand(n, generator=generator) < params.horizontal_flip).view(-1, 1, 1, 1)
    source = torch.where(mirror, source.flip(-1), source)
    driving = torch.where(mirror, driving.flip(-1), driving)
    factors = torch.stack(
        [
            _uniform(n, 1 - params.brightness, 1 + params.brightness, generator),
            _uniform(n, 1 - params.contrast, 1 + params.contrast, generator),
            _uniform(n, 1 - params.saturation, 1 + params.saturation, generator),
            _uniform(n, -params.hue, params.hue, generator),
        ],
        dim=1,
    )
    return color_jitter(source, factors), color_jitter(driving, factors)
