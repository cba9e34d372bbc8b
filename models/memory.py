"""MCNet's memory unit: identity-conditioned meta-memory (IICM) and memory compensation (MCM).

One instance serves every decoder scale (widths 32, 64, 128 for vox-256); the per-scale layers are named
`feat_forward_proj_{w}`, `conv_{w}`, `norm_{w}` after the feature width, as in the authors' checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.config import MCNetConfig
from models.dynamic_conv import DynamicConv2d
from models.fused import composed_pointwise_linear, pointwise_linear
from models.style import StyleConv


@dataclass(frozen=True)
class MemoryOutput:
    """One memory call.

    Attributes:
        output: (B, C, w, w) the input with its odd channels replaced by compensated ones.
        feature: (B, M, w, w) the projected odd channels ("feat"), M = memory_channels.
        value: (B, M, S, S) the memory value map read for this feature, S = memory_spatial.
    """

    output: Tensor
    feature: Tensor
    value: Tensor


class MemoryUnit(nn.Module):
    """Reads a learned (M, S, S) memory bank, conditioned on the source identity, to compensate a feature.

    Step by step, for a warped feature F (B, C, w, w):
      1. interleaved split: even channels pass through untouched, odd channels are compensated;
      2. feat = 1x1 projection of the odd channels to M channels;
      3. style = MLP(avgpool(feat) ++ flattened source keypoints)  (the implicit identity code);
      4. memory = StyleConv(bank, style) with demodulation and per-call noise (IICM);
      5. key, value = relu(dynamic conv of the memory, kernels mixed by attention on feat);
      6. query = relu(1x1 conv of feat);
      7. residual = softmax(q k^T / 4) v  over the S*S memory positions (MCM);
      8. out = relu(diff_conv(feat - residual)) + feat;
      9. out = relu(InstanceNorm(conv3x3(out))) back to C/2 channels;
     10. re-interleave: channel 2j = F[:, 2j], channel 2j+1 = out[:, j].
    """

    def __init__(self, config: MCNetConfig) -> None:
        super().__init__()
        self.config = config
        m, s = config.memory_channels, config.memory_spatial
        self.mb = nn.Parameter(torch.empty(1, m, s, s))
        nn.init.kaiming_uniform_(self.mb, mode="fan_in", nonlinearity="relu")
        channels = config.encoder_channels
        n = config.gen_num_down_blocks
        # Memory calls happen at encoder levels n, n-1, ..., 1 (never at full resolution).
        self.widths = config.memory_widths
        for level, width in zip(range(n, 0, -1), self.widths, strict=True):
            half = channels[level] // 2
            self.add_module(f"feat_forward_proj_{width}", nn.Conv2d(half, m, kernel_size=1))
        self.query_conv = nn.Conv2d(m, m, kernel_size=1)
        self.conv_kv = DynamicConv2d(
            m, 2 * m, 3, kernels=config.memory_kernels, temperature=config.memory_temperature, padding=1
        )
        self.diff_conv = nn.Conv2d(m, m, kernel_size=1)
        for level, width in zip(range(n, 0, -1), self.widths, strict=True):
            half = channels[level] // 2
            self.add_module(f"conv_{width}", nn.Conv2d(m, half, kernel_size=3, padding=1))
            self.add_module(f"norm_{width}", nn.InstanceNorm2d(half, affine=True))
        self.style_route = nn.Sequential(
            nn.Linear(m + 2 * config.num_kp, config.memory_style_hidden),
            nn.ReLU(True),
            nn.Linear(config.memory_style_hidden, m),
        )
        self.styleconv = StyleConv(m, m, 3, m)
        # Reference arithmetic when False (1x1 convs through conv2d, the divisor applied to the scores);
        # see models.fused.
        self.fused = True

    def noise_shape(self, batch: int) -> tuple[int, int, int, int]:
        """Shape of the noise one call needs: (B, 1, S, S)."""
        s = self.config.memory_spatial
        return (batch, 1, s, s)

    def forward(self, feature: Tensor, kp_source_value: Tensor, noise: Tensor) -> MemoryOutput:
        """Compensate one warped feature map.

        Args:
            feature: (B, C, w, w) warped and occluded encoder feature; w must be one of `config.memory_widths`.
            kp_source_value: (B, K, 2) keypoints of the *source* image.
            noise: (B, 1, S, S) standard normal noise for the StyleConv (scaled by its learned strength).
        """
        kept, compensated = feature[:, ::2], feature[:, 1::2]
        if self.fused:
            out, feat, value = self._compensate_fused(compensated, kp_source_value, noise)
        else:
            out, feat, value = self._compensate_reference(compensated, kp_source_value, noise)
        bs, c, h, w = compensated.shape
        out = torch.stack((kept, out.to(kept.dtype)), dim=2).reshape(bs, c * 2, h, w)
        return MemoryOutput(output=out, feature=feat, value=value)

    def _memory(self, feat_pooled: Tensor, kp_source_value: Tensor, noise: Tensor) -> Tensor:
        """Steps 3-4: the implicit identity code from the pooled feature and source keypoints, then IICM."""
        bs = feat_pooled.shape[0]
        keypoints = kp_source_value.reshape(bs, -1).to(feat_pooled.dtype)
        style = self.style_route(torch.cat((feat_pooled, keypoints), -1))
        memory = self.mb.expand(bs, *self.mb.shape[1:]).contiguous()
        return self.styleconv(memory, style, noise)

    def _compensate_reference(
        self, compensated: Tensor, kp_source_value: Tensor, noise: Tensor
    ) -> tuple[Tensor, ...]:
        """Steps 2-9 op for op as the authors write them. Returns (out, feat, value)."""
        bs, c, h, w = compensated.shape
        feat = getattr(self, f"feat_forward_proj_{w}")(compensated)
        memory = self._memory(F.adaptive_avg_pool2d(feat, 1).view(bs, -1), kp_source_value, noise)
        key, value = F.relu(self.conv_kv(feat, memory)).chunk(2, dim=1)
        query = F.relu(self.query_conv(feat))
        q, k, v = (t.flatten(2).transpose(1, 2) for t in (query, key, value))  # (B, positions, M)
        similarity = torch.einsum("b i d, b j d -> b i j", q, k)
        # Softmax in float32 even when the rest runs in bf16/fp16 (a no-op in float32).
        attention = torch.softmax(similarity.float() / self.config.memory_attention_divisor, -1).to(v.dtype)
        residual = torch.einsum("b i j, b j d -> b i d", attention, v)
        residual = residual.view(bs, h, w, -1).permute(0, 3, 1, 2)
        out = F.relu(self.diff_conv(feat - residual)) + feat
        out = getattr(self, f"conv_{w}")(out)
        return F.relu(getattr(self, f"norm_{w}")(out)), feat, value

    def _compensate_fused(
        self, compensated: Tensor, kp_source_value: Tensor, noise: Tensor
    ) -> tuple[Tensor, ...]:
        """Steps 2-9 with the same result and less work (see models.fused); returns (out, feat, value).

        Pixels-major ("NHWC") throughout, so every product is a plain matrix multiply:
          * feat, the query and diff_conv(feat) all come from the narrow odd channels x (C/2 wide): the
            query and diff_conv weights are composed with the projection (1x1 after 1x1 is one 1x1);
          * diff_conv(feat - A v) = diff_conv(feat) - A (v W_diff^T): the diff conv is applied to the
            1024 memory values instead of the w*w pixels, and the subtraction fuses into that product;
          * the divisor is applied in place (float32) or folded into the query (bf16/fp16), and the
            softmax reads the low-precision scores directly (it accumulates in float32 internally);
          * conv_w reads the result as a channels-last map, oneDNN's fastest layout for it.
        """
        bs, c, h, w = compensated.shape
        project = getattr(self, f"feat_forward_proj_{w}")
        x = compensated.permute(0, 2, 3, 1).reshape(bs, h * w, c)  # (B, w*w, C/2)
        feat_rows = pointwise_linear(x, project)  # (B, w*w, M)
        feat = feat_rows.view(bs, h, w, -1).permute(0, 3, 1, 2)  # (B, M, w, w), a channels-last view
        memory = self._memory(feat_rows.mean(1), kp_source_value, noise)
        key, value = F.relu(self.conv_kv(feat, memory)).chunk(2, dim=1)
        k, v = key.flatten(2), value.flatten(2)  # (B, M, S*S)

        divisor = self.config.memory_attention_divisor
        query = F.relu(composed_pointwise_linear(x, self.query_conv, project))  # (B, w*w, M)
        if query.dtype == torch.float32:
            scores = torch.bmm(query, k.to(query.dtype)).div_(divisor)
        else:
            scores = torch.bmm(query / divisor, k.to(query.dtype))
        attention = torch.softmax(scores, -1)  # (B, w*w, S*S)
        diff_weight = self.diff_conv.weight.flatten(1)
        values = torch.matmul(v.transpose(1, 2), diff_weight.to(v.dtype).t())  # (B, S*S, M): W_diff v_j
        direct = composed_pointwise_linear(x, self.diff_conv, project)  # diff_conv(feat), bias included
        out_rows = torch.baddbmm(direct, attention.to(values.dtype), values.to(direct.dtype), alpha=-1)
        out_rows = F.relu(out_rows) + feat_rows.to(out_rows.dtype)
        out = out_rows.view(bs, h, w, -1).permute(0, 3, 1, 2)  # channels-last (B, M, w, w)
        out = getattr(self, f"conv_{w}")(out)
        return F.relu(getattr(self, f"norm_{w}")(out)), feat, value
