"""Random smooth warps (affine + thin-plate spline) for the keypoint equivariance losses.

If T is a known warp, the keypoints of the warped frame mapped back through T must be the keypoints of
the frame, and the Jacobians must compose likewise. This is what makes the unsupervised keypoints
consistent; the warp family (affine sigma 0.05, 5x5 TPS sigma 0.005) is the authors' vox-256 setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from models.blocks import make_coordinate_grid


@dataclass(frozen=True)
class TransformParams:
    """Noise levels of the random warp; all zero gives the identity."""

    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5


class RandomTransform:
    """One random warp per batch element, in normalised (x, y) coordinates in [-1, 1].

    Args:
        batch: number of independent warps.
        params: noise levels.
        generator: random generator (CPU) the warp is drawn from.
        device, dtype: where the warp's tensors live.
    """

    def __init__(
        self,
        batch: int,
        params: TransformParams,
        *,
        generator: torch.Generator,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        noise = torch.randn(batch, 2, 3, generator=generator) * params.sigma_affine
        identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        self.theta = (noise + identity).to(device=device, dtype=dtype).view(batch, 1, 2, 3)
        n = params.points_tps
        self.control_points = make_coordinate_grid(n, n, dtype=dtype, device=device).view(1, 1, n * n, 2)
        self.control_params = (torch.randn(batch, 1, n * n, generator=generator) * params.sigma_tps).to(
            device=device, dtype=dtype
        )
        self.batch = batch

    def shard(self, start: int, stop: int) -> RandomTransform:
        """The warps of batch elements `start:stop` (a shard of the global batch, same values)."""
        part = object.__new__(RandomTransform)
        part.theta = self.theta[start:stop]
        part.control_points = self.control_points
        part.control_params = self.control_params[start:stop]
        part.batch = stop - start
        return part

    def warp_coordinates(self, coordinates: Tensor) -> Tensor:
        """Map points through the warp.

        Args:
            coordinates: (B, N, 2) points (x, y).

        Returns:
            (B, N, 2) warped points.
        """
        theta = self.theta.to(coordinates.dtype)
        affine = torch.matmul(theta[..., :2], coordinates.unsqueeze(-1)) + theta[..., 2:]
        warped = affine.squeeze(-1)
        # TPS radial basis U(r) = r^2 log r on the L1 distance to each control point.
        distance = (coordinates.unsqueeze(2) - self.control_points.to(coordinates.dtype)).abs().sum(-1)
        basis = distance**2 * torch.log(distance + 1e-6)
        offset = (basis * self.control_params.to(coordinates.dtype)).sum(dim=2, keepdim=True)
        return warped + offset

    def transform_frame(self, frame: Tensor) -> Tensor:
        """Resample a frame so that output pixel z shows input pixel T(z).

        Args:
            frame: (B, C, H, W) float.
        """
        _, _, h, w = frame.shape
        grid = make_coordinate_grid(h, w, dtype=frame.dtype, device=frame.device).view(1, h * w, 2)
        grid = self.warp_coordinates(grid.expand(self.batch, -1, -1)).view(self.batch, h, w, 2)
        return F.grid_sample(frame, grid, mode="bilinear", padding_mode="reflection", align_corners=True)

    def jacobian(self, coordinates: Tensor) -> Tensor:
        """d T(z) / d z at the given points, differentiable (for the Jacobian loss).

        Args:
            coordinates: (B, N, 2) points; need not require grad.

        Returns:
            (B, N, 2, 2) row-major [[dTx/dx, dTx/dy], [dTy/dx, dTy/dy]].
        """
        with torch.enable_grad():
            points = coordinates if coordinates.requires_grad else coordinates.detach().requires_grad_(True)
            warped = self.warp_coordinates(points)
            grad_x = torch.autograd.grad(warped[..., 0].sum(), points, create_graph=True)[0]
            grad_y = torch.autograd.grad(warped[..., 1].sum(), points, create_graph=True)[0]
        return torch.stack([grad_x, grad_y], dim=-2)
