"""Dynamic convolution: K candidate kernels mixed per sample by attention computed from another tensor.

MCNet computes the mixing weights from the projected *feature* and applies the mixed kernel to the
identity-conditioned *memory* (that asymmetry is the point: the feature chooses how to read the memory).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class KernelAttention(nn.Module):
    """Global average pool -> 1x1 conv (no bias) -> ReLU -> 1x1 conv -> softmax(x / temperature)."""

    def __init__(self, in_planes: int, kernels: int, temperature: float, ratio: float = 0.25) -> None:
        super().__init__()
        hidden = int(in_planes * ratio) + 1 if in_planes != 3 else kernels
        self.fc1 = nn.Conv2d(in_planes, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, kernels, 1, bias=True)
        self.temperature = temperature
        nn.init.kaiming_normal_(self.fc1.weight, mode="fan_out", nonlinearity="relu")
        nn.init.kaiming_normal_(self.fc2.weight, mode="fan_out", nonlinearity="relu")
        assert self.fc2.bias is not None
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, h, w) -> (B, K) mixing weights summing to 1."""
        x = F.adaptive_avg_pool2d(x, 1)
        x = F.relu(self.fc1(x))
        x = self.fc2(x).view(x.size(0), -1)
        return F.softmax(x / self.temperature, 1)


class DynamicConv2d(nn.Module):
    """Conv whose kernel and bias are sum_k a_k W_k, a = attention(condition), applied with groups=B.

    Keys: `weight` (K, out, in, k, k), `bias` (K, out), `attention.fc1.weight`, `attention.fc2.*`.
    """

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        kernel_size: int,
        *,
        kernels: int,
        temperature: float,
        padding: int,
    ) -> None:
        super().__init__()
        self.in_planes = in_planes
        self.out_planes = out_planes
        self.kernel_size = kernel_size
        self.padding = padding
        self.kernels = kernels
        self.attention = KernelAttention(in_planes, kernels, temperature)
        self.weight = nn.Parameter(torch.empty(kernels, out_planes, in_planes, kernel_size, kernel_size))
        # The reference leaves the bias uninitialised (raw memory); zeros keep random-weight runs finite.
        self.bias = nn.Parameter(torch.zeros(kernels, out_planes))
        for i in range(kernels):
            nn.init.kaiming_uniform_(self.weight.data[i])

    def forward(self, condition: Tensor, x: Tensor) -> Tensor:
        """Args: condition (B, in, h', w') chooses the kernel; x (B, in, h, w) is convolved. -> (B, out, h, w)."""
        attention = self.attention(condition)  # (B, K)
        batch, _, height, width = x.shape
        weight = torch.mm(attention, self.weight.view(self.kernels, -1))
        weight = weight.view(-1, self.in_planes, self.kernel_size, self.kernel_size)
        bias = torch.mm(attention, self.bias).view(-1)
        out = F.conv2d(
            x.reshape(1, -1, height, width), weight=weight, bias=bias, padding=self.padding, groups=batch
        )
        return out.view(batch, self.out_planes, out.size(-2), out.size(-1))
