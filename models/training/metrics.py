"""Image reconstruction metrics on [0, 1] frames: L1, PSNR and SSIM, per image, in torch.

SSIM follows scikit-image's defaults that the authors' evaluation used (`structural_similarity` with a
7x7 uniform window, sample covariance, K1 0.01, K2 0.03, border of 3 pixels left out, mean over
channels), with a data range of 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(prediction: Tensor, target: Tensor) -> None:
    if prediction.shape != target.shape or prediction.dim() != 4:
        raise ValueError(
            f"`prediction` and `target` must both be (B, C, H, W), got {prediction.shape} and {target.shape}"
        )


def l1(prediction: Tensor, target: Tensor) -> Tensor:
    """(B,) mean absolute error per image."""
    _check(prediction, target)
    return (prediction - target).abs().flatten(1).mean(1)


def psnr(prediction: Tensor, target: Tensor, *, eps: float = 1e-10) -> Tensor:
    """(B,) peak signal-to-noise ratio in dB per image (peak 1)."""
    _check(prediction, target)
    mse = ((prediction - target) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / (mse + eps))


def ssim(prediction: Tensor, target: Tensor, *, window: int = 7) -> Tensor:
    """(B,) structural similarity per image (mean over channels and the valid interior)."""
    _check(prediction, target)
    x, y = prediction.double(), target.double()
    channels = x.shape[1]
    kernel = torch.full((channels, 1, window, window), 1.0 / window**2, dtype=x.dtype, device=x.device)

    def blur(image: Tensor) -> Tensor:
        return F.conv2d(image, kernel, groups=channels)

    count = window**2
    norm = count / (count - 1)  # sample covariance, as scikit-image's default
    mx, my = blur(x), blur(y)
    vx = norm * (blur(x * x) - mx * mx)
    vy = norm * (blur(y * y) - my * my)
    cxy = norm * (blur(x * y) - mx * my)
    c1, c2 = 0.01**2, 0.03**2
    score = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return score.flatten(1).mean(1).to(prediction.dtype)
