"""The dense motion network: keypoints of source and driving frame to a dense flow and an occlusion map."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.blocks import AntiAliasInterpolation2d, Hourglass, keypoint_heatmaps, make_coordinate_grid
from models.config import MCNetConfig
from models.keypoint_detector import KeypointOutput


@dataclass(frozen=True)
class MotionOutput:
    """What the dense motion network predicts, at its own resolution m (64 for vox-256).

    Attributes:
        deformation: (B, m, m, 2) sampling grid (x, y) in [-1, 1]: where each output pixel reads the source.
        occlusion_map: (B, 1, m, m) in (0, 1); 1 = visible in the source (the warped source is trusted).
        mask: (B, K+1, m, m) softmax weights of the K+1 candidate motions (background first).
        sparse_deformed: (B, K+1, C, m, m) the down-sampled source warped by each candidate motion.
    """

    deformation: Tensor
    occlusion_map: Tensor
    mask: Tensor
    sparse_deformed: Tensor


class DenseMotionNetwork(nn.Module):
    """FOMM's dense motion: K+1 sparse motions (identity background first) blended by a predicted mask.

    State-dict keys: `hourglass.*`, `mask.*`, `occlusion.*`, `down.weight`.
    """

    def __init__(self, config: MCNetConfig) -> None:
        super().__init__()
        self.config = config
        k, c = config.num_kp, config.num_channels
        self.hourglass = Hourglass(
            config.motion_block_expansion,
            (k + 1) * (c + 1),
            config.motion_num_blocks,
            config.motion_max_features,
        )
        self.mask = nn.Conv2d(self.hourglass.out_filters, k + 1, kernel_size=(7, 7), padding=(3, 3))
        self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=(7, 7), padding=(3, 3))
        self.down: AntiAliasInterpolation2d | None = None
        if config.motion_scale_factor != 1:
            self.down = AntiAliasInterpolation2d(c, config.motion_scale_factor)

    def prepare_source(self, source_image: Tensor) -> Tensor:
        """The source at the motion resolution; depends on the source only, so it is cached per job."""
        return source_image if self.down is None else self.down(source_image)

    def _sparse_motions(
        self, size: tuple[int, int], kp_driving: KeypointOutput, kp_source: KeypointOutput
    ) -> Tensor:
        """(B, K+1, h, w, 2): identity grid, then J_s J_d^-1 (z - kp_d) + kp_s for each keypoint."""
        h, w = size
        bs, k = kp_driving.value.shape[:2]
        identity = make_coordinate_grid(h, w, dtype=kp_source.value.dtype, device=kp_source.value.device)
        identity = identity.view(1, 1, h, w, 2)
        coordinates = identity - kp_driving.value.view(bs, k, 1, 1, 2)
        if kp_driving.jacobian is not None and kp_source.jacobian is not None:
            jacobian = torch.matmul(kp_source.jacobian, torch.inverse(kp_driving.jacobian))
            jacobian = jacobian.unsqueeze(-3).unsqueeze(-3).repeat(1, 1, h, w, 1, 1)
            coordinates = torch.matmul(jacobian, coordinates.unsqueeze(-1)).squeeze(-1)
        driving_to_source = coordinates + kp_source.value.view(bs, k, 1, 1, 2)
        return torch.cat([identity.repeat(bs, 1, 1, 1, 1), driving_to_source], dim=1)

    def forward(
        self, source_small: Tensor, kp_driving: KeypointOutput, kp_source: KeypointOutput
    ) -> MotionOutput:
        """Predict the dense motion.

        Args:
            source_small: (B or 1, C, m, m) the source from `prepare_source` (batch 1 is broadcast).
            kp_driving: (B, K, ...) keypoints the output should follow.
            kp_source: (B, K, ...) keypoints of the source.
        """
        bs, k = kp_driving.value.shape[:2]
        dtype = self.mask.weight.dtype
        source_small = source_small.to(dtype)
        if source_small.shape[0] != bs:
            source_small = source_small.expand(bs, *source_small.shape[1:])
        _, c, h, w = source_small.shape
        gaussian_driving = keypoint_heatmaps(kp_driving.value, h, w, self.config.motion_kp_variance)
        gaussian_source = keypoint_heatmaps(kp_source.value, h, w, self.config.motion_kp_variance)
        heatmap = gaussian_driving - gaussian_source
        zeros = torch.zeros(bs, 1, h, w, dtype=heatmap.dtype, device=heatmap.device)
        heatmap = torch.cat([zeros, heatmap], dim=1).unsqueeze(2)  # (B, K+1, 1, h, w)

        sparse_motion = self._sparse_motions((h, w), kp_driving, kp_source)
        repeated = source_small.unsqueeze(1).repeat(1, k + 1, 1, 1, 1).view(bs * (k + 1), c, h, w)
        # The reference leaves grid_sample at its default here: align_corners=False (unlike the generator).
        sparse_deformed = F.grid_sample(
            repeated, sparse_motion.view(bs * (k + 1), h, w, 2).to(dtype), align_corners=False
        ).view(bs, k + 1, c, h, w)

        hourglass_input = torch.cat([heatmap.to(sparse_deformed.dtype), sparse_deformed], dim=2)
        prediction = self.hourglass(hourglass_input.view(bs, -1, h, w))  # per slot [heat, R, G, B]

        mask = F.softmax(self.mask(prediction), dim=1)
        motion = sparse_motion.permute(0, 1, 4, 2, 3)  # (B, K+1, 2, h, w)
        deformation = (motion * mask.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 1)
        occlusion_map = torch.sigmoid(self.occlusion(prediction))
        return MotionOutput(
            deformation=deformation, occlusion_map=occlusion_map, mask=mask, sparse_deformed=sparse_deformed
        )
