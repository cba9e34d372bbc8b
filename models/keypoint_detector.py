"""The keypoint detector: an image to K keypoints (x, y) and their local 2x2 Jacobians (FOMM's KPDetector)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.blocks import AntiAliasInterpolation2d, Hourglass, make_coordinate_grid
from models.config import MCNetConfig


@dataclass(frozen=True)
class KeypointOutput:
    """Keypoints of a batch of images.

    Attributes:
        value: (B, K, 2) float, (x, y) in about [-1, 1] (x along the width).
        jacobian: (B, K, 2, 2) float, row-major [[a, b], [c, d]], or None without Jacobians.
    """

    value: Tensor
    jacobian: Tensor | None

    def expand(self, batch: int) -> KeypointOutput:
        """The same keypoints repeated (as views) for a batch of `batch` frames; the batch must be 1."""
        value = self.value.expand(batch, *self.value.shape[1:])
        jacobian = None if self.jacobian is None else self.jacobian.expand(batch, *self.jacobian.shape[1:])
        return KeypointOutput(value=value, jacobian=jacobian)

    def detach(self) -> KeypointOutput:
        """A copy cut from the autograd graph (training uses it for the equivariance targets)."""
        jacobian = None if self.jacobian is None else self.jacobian.detach()
        return KeypointOutput(value=self.value.detach(), jacobian=jacobian)


class KeypointDetector(nn.Module):
    """Hourglass on the anti-aliased, down-sampled image; soft-argmax keypoints on the valid 7x7 grid.

    State-dict keys: `predictor.*`, `kp.*`, `jacobian.*`, `down.weight` (75 tensors for vox-256).
    """

    def __init__(self, config: MCNetConfig) -> None:
        super().__init__()
        self.config = config
        self.predictor = Hourglass(
            config.kp_block_expansion, config.num_channels, config.kp_num_blocks, config.kp_max_features
        )
        features = self.predictor.out_filters
        self.kp = nn.Conv2d(features, config.num_kp, kernel_size=(7, 7), padding=0)
        self.jacobian: nn.Conv2d | None = None
        if config.estimate_jacobian:
            self.jacobian = nn.Conv2d(features, 4 * config.num_kp, kernel_size=(7, 7), padding=0)
            # Identity Jacobians at initialisation, as the reference (zero weights, bias [1, 0, 0, 1]).
            assert self.jacobian.bias is not None
            with torch.no_grad():
                self.jacobian.weight.zero_()
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * config.num_kp))
        self.down: AntiAliasInterpolation2d | None = None
        if config.kp_scale_factor != 1:
            self.down = AntiAliasInterpolation2d(config.num_channels, config.kp_scale_factor)

    def forward(self, image: Tensor) -> KeypointOutput:
        """Detect keypoints.

        Args:
            image: (B, C, H, W) float in [0, 1] at `config.image_size`.

        Returns:
            KeypointOutput with (B, K, 2) values and (B, K, 2, 2) Jacobians.
        """
        x = image if self.down is None else self.down(image)
        features = self.predictor(x)
        logits = self.kp(features)  # (B, K, g, g), g = keypoint_grid_size (58 for vox-256)
        shape = logits.shape
        heatmap = F.softmax(logits.view(shape[0], shape[1], -1) / self.config.kp_temperature, dim=2)
        heatmap = heatmap.view(*shape)
        grid = make_coordinate_grid(shape[2], shape[3], dtype=heatmap.dtype, device=heatmap.device)
        value = (heatmap.unsqueeze(-1) * grid.view(1, 1, *grid.shape)).sum(dim=(2, 3))
        jacobian = None
        if self.jacobian is not None:
            jacobian_map = self.jacobian(features).reshape(shape[0], shape[1], 4, shape[2], shape[3])
            jacobian = (heatmap.unsqueeze(2) * jacobian_map).view(shape[0], shape[1], 4, -1).sum(dim=-1)
            jacobian = jacobian.view(shape[0], shape[1], 2, 2)
        return KeypointOutput(value=value, jacobian=jacobian)
