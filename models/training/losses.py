"""The paper's training losses: multi-scale reconstruction (VGG19 perceptual, or L1 without VGG weights),
keypoint equivariance on values and Jacobians, and the memory's feature consistency.

Weights default to the authors' README command (10 for every term; the GAN and kp-distance terms are
left out: the first is switched off there and the second has zero gradient).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.blocks import AntiAliasInterpolation2d
from models.generator import GeneratorOutput
from models.keypoint_detector import KeypointDetector, KeypointOutput
from models.training.transforms import RandomTransform
from models.training.vgg import VGG19Features

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LossWeights:
    """Weights of each term.

    Attributes:
        perceptual: per VGG19 layer (relu1_1 ... relu5_1), applied at every pyramid scale.
        l1: per pyramid scale, for the L1 fallback used when no VGG19 weights are given.
        equivariance_value, equivariance_jacobian: keypoint equivariance terms.
        feature_consistency: memory value maps against the features that queried them.
    """

    perceptual: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0, 10.0)
    l1: float = 10.0
    equivariance_value: float = 10.0
    equivariance_jacobian: float = 10.0
    feature_consistency: float = 10.0


class ImagePyramid(nn.Module):
    """The image at several scales (anti-aliased down-sampling, as the authors' pyramid)."""

    def __init__(self, scales: tuple[float, ...], channels: int = 3) -> None:
        super().__init__()
        self.scales = scales
        self.downs = nn.ModuleList(
            nn.Identity() if scale == 1 else AntiAliasInterpolation2d(channels, scale) for scale in scales
        )

    def forward(self, image: Tensor) -> list[Tensor]:
        return [down(image) for down in self.downs]


class ReconstructionLoss(nn.Module):
    """Multi-scale distance between prediction and driving frame.

    With `vgg` it is the perceptual loss (L1 between VGG19 activations, per layer weight); without, it falls
    back to L1 between the pixels at each scale (weight `l1`), a weaker but honest substitute.
    """

    def __init__(self, scales: tuple[float, ...], weights: LossWeights, vgg: VGG19Features | None) -> None:
        super().__init__()
        self.pyramid = ImagePyramid(scales)
        self.vgg = vgg
        self.weights = weights
        if vgg is None:
            logger.warning(
                "no VGG19 weights given: the perceptual loss falls back to a multi-scale L1 loss "
                "(scales %s); pass a local VGG19 weights file to train with the paper's perceptual loss",
                list(scales),
            )

    @property
    def kind(self) -> str:
        """ "perceptual" or "l1" (recorded with the run)."""
        return "l1" if self.vgg is None else "perceptual"

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        """Scalar loss between (B, 3, H, W) prediction and target in [0, 1]."""
        total = prediction.new_zeros(())
        for pred, real in zip(self.pyramid(prediction), self.pyramid(target), strict=True):
            if self.vgg is None:
                total = total + self.weights.l1 * (pred - real).abs().mean()
                continue
            with torch.no_grad():
                real_features = self.vgg(real)
            for weight, a, b in zip(self.weights.perceptual, self.vgg(pred), real_features, strict=True):
                total = total + weight * (a - b).abs().mean()
        return total


def equivariance_losses(
    kp_detector: KeypointDetector, driving: Tensor, kp_driving: KeypointOutput, transform: RandomTransform
) -> tuple[Tensor, Tensor | None]:
    """Keypoints must follow a known warp T of the driving frame.

    value loss = mean |kp(d) - T(kp(T(d)))|; Jacobian loss = mean |I - J_d^-1 (dT . J_{T(d)})|.

    Args:
        kp_detector: the detector being trained.
        driving: (B, 3, H, W) frames.
        kp_driving: the detector's output on `driving`.
        transform: the random warp (one per batch element).

    Returns:
        (value loss, Jacobian loss or None when the model has no Jacobians).
    """
    transformed = kp_detector(transform.transform_frame(driving))
    value = (kp_driving.value - transform.warp_coordinates(transformed.value)).abs().mean()
    if kp_driving.jacobian is None or transformed.jacobian is None:
        return value, None
    composed = torch.matmul(transform.jacobian(transformed.value), transformed.jacobian)
    product = torch.matmul(torch.inverse(kp_driving.jacobian), composed)
    eye = torch.eye(2, dtype=product.dtype, device=product.device).view(1, 1, 2, 2)
    return value, (eye - product).abs().mean()


def feature_consistency_loss(output: GeneratorOutput) -> Tensor:
    """Sum over memory calls of mean |resize(feature, S).detach() - value|: the memory read for a feature
    should resemble that feature (bilinear resize, align_corners=True, to the memory's S x S)."""
    total = output.prediction.new_zeros(())
    for feature, value in zip(output.memory_features, output.memory_values, strict=True):
        target = feature.detach()
        if target.shape[2:] != value.shape[2:]:
            target = F.interpolate(target, size=value.shape[2:], mode="bilinear", align_corners=True)
        total = total + (target - value).abs().mean()
    return total
