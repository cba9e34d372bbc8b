"""The MCNet generator: U-Net encoder of the source, flow-warped skips compensated by the memory unit.

State-dict keys: `dense_motion_network.*`, `first.*`, `down_blocks.*`, `up_blocks.*`, `resblock.*`,
`final.*`, `mbUnit.*` (247 tensors for vox-256), the authors' names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from models.config import MCNetConfig
from models.dense_motion import DenseMotionNetwork
from models.errors import InputShapeError
from models.keypoint_detector import KeypointOutput
from models.memory import MemoryUnit


@dataclass(frozen=True)
class SourceEncoding:
    """Everything the generator derives from the source image alone: computed once per job, reused per frame.

    Attributes:
        image: (1 or B, C, H, W) the source in [0, 1].
        features: encoder maps, full resolution first: (B, 64, 256, 256), (B, 128, 128, 128),
            (B, 256, 64, 64), (B, 512, 32, 32) for vox-256.
        motion_source: (B, C, m, m) the source anti-aliased to the dense-motion resolution.
    """

    image: Tensor
    features: tuple[Tensor, ...]
    motion_source: Tensor

    def expand(self, batch: int) -> SourceEncoding:
        """Views of a batch-1 encoding for `batch` frames (no copy)."""
        if self.image.shape[0] == batch:
            return self
        if self.image.shape[0] != 1:
            raise InputShapeError(
                f"a source encoding of batch {self.image.shape[0]} cannot serve {batch} frames"
            )
        grow = lambda t: t.expand(batch, *t.shape[1:])  # noqa: E731
        return SourceEncoding(
            image=grow(self.image),
            features=tuple(grow(f) for f in self.features),
            motion_source=grow(self.motion_source),
        )


@dataclass(frozen=True)
class GeneratorOutput:
    """The prediction and the intermediates a trainer (losses) or a debugger needs.

    Attributes:
        prediction: (B, C, H, W) in [0, 1], the animated frame.
        deformed: (B, C, H, W) the source image warped by the dense flow (align_corners=True).
        occlusion_map: (B, 1, m, m) in (0, 1) at the motion resolution; 1 = take the warped source.
        deformation: (B, m, m, 2) the dense flow (sampling grid into the source).
        mask: (B, K+1, m, m) the dense-motion blend weights.
        sparse_deformed: (B, K+1, C, m, m) the source warped by each sparse motion.
        warped_features: warped and occluded encoder maps, coarsest first ((B,512,32,32) ... (B,64,256,256)):
            the decoder inputs before memory compensation ("Fwarp" and the skips).
        memory_features: per memory call (coarsest first) the projected feature (B, M, w, w), M = 512.
        memory_values: per memory call the memory value map (B, M, S, S), S = 32; the feature-consistency
            loss compares each value map with its (detached, resized to S) feature.
        kp_source: the source keypoints used.
        kp_driving: the (normalised) driving keypoints the frame follows.
    """

    prediction: Tensor
    deformed: Tensor
    occlusion_map: Tensor
    deformation: Tensor
    mask: Tensor
    sparse_deformed: Tensor
    warped_features: tuple[Tensor, ...]
    memory_features: tuple[Tensor, ...]
    memory_values: tuple[Tensor, ...]
    kp_source: KeypointOutput
    kp_driving: KeypointOutput


def _warp(inp: Tensor, deformation: Tensor) -> Tensor:
    """Sample `inp` at the flow, resizing the flow first (bilinear, align_corners=True) when sizes differ."""
    _, h_flow, w_flow, _ = deformation.shape
    _, _, h, w = inp.shape
    if (h_flow, w_flow) != (h, w):
        deformation = F.interpolate(
            deformation.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=True
        )
        deformation = deformation.permute(0, 2, 3, 1)
    dtype = torch.promote_types(inp.dtype, deformation.dtype)  # never sample with a low-precision grid
    return F.grid_sample(inp.to(dtype), deformation.to(dtype), align_corners=True)


def _occlude(inp: Tensor, occlusion_map: Tensor) -> Tensor:
    """Multiply by the occlusion map, resized (bilinear, align_corners=True) to the feature size."""
    if inp.shape[2:] != occlusion_map.shape[2:]:
        occlusion_map = F.interpolate(occlusion_map, size=inp.shape[2:], mode="bilinear", align_corners=True)
    return inp * occlusion_map


class Generator(nn.Module):
    """Source image + source/driving keypoints -> frame (`Unet_Generator_keypoint_aware` + `ExpendMemoryUnit`)."""

    def __init__(self, config: MCNetConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.encoder_channels
        n = config.gen_num_down_blocks
        self.dense_motion_network = DenseMotionNetwork(config)
        self.first = SameBlock2d(config.num_channels, channels[0], kernel_size=7, padding=3)
        self.down_blocks = nn.ModuleList(DownBlock2d(channels[i], channels[i + 1]) for i in range(n))
        # Decoder widths: in_0 = deepest encoder map; each level concatenates a skip of its own width.
        ins = [channels[n]] + [2 * channels[n - 1 - i] for i in range(n - 1)]
        outs = [channels[n - 1 - i] for i in range(n)]
        self.up_blocks = nn.ModuleList(UpBlock2d(ins[i], outs[i]) for i in range(n))
        self.resblock = nn.ModuleList(ResBlock2d(ins[i // 2]) for i in range(2 * n))
        self.final = nn.Conv2d(channels[0], config.num_channels, kernel_size=(7, 7), padding=(3, 3))
        self.mbUnit = MemoryUnit(config)

    @property
    def memory_calls(self) -> int:
        """Memory-unit calls per frame, each drawing one noise map (3 for vox-256)."""
        return self.config.gen_num_down_blocks

    def encode_source(self, source_image: Tensor) -> SourceEncoding:
        """Run the encoder and the motion down-sampling on the source (cached by inference per job)."""
        out = self.first(source_image)
        features = [out]
        for block in self.down_blocks:
            out = block(out)
            features.append(out)
        return SourceEncoding(
            image=source_image,
            features=tuple(features),
            motion_source=self.dense_motion_network.prepare_source(source_image),
        )

    def draw_noise(self, batch: int, *, rng: torch.Generator | None = None) -> list[Tensor]:
        """Fresh N(0, 1) maps for one forward pass, drawn on the CPU (device-independent values).

        Frames are drawn one after the other (frame-major, then call order), so a batch of B frames gets
        exactly the noise B single-frame passes would get from the same generator state.
        """
        shape = self.mbUnit.noise_shape(1)
        per_frame = [
            [torch.randn(shape, generator=rng) for _ in range(self.memory_calls)] for _ in range(batch)
        ]
        return [torch.cat([frame[call] for frame in per_frame], dim=0) for call in range(self.memory_calls)]

    def forward(
        self,
        source_image: Tensor,
        kp_driving: KeypointOutput,
        kp_source: KeypointOutput,
        *,
        noise: Sequence[Tensor] | None = None,
        rng: torch.Generator | None = None,
        encoding: SourceEncoding | None = None,
    ) -> GeneratorOutput:
        """Animate the source to follow the driving keypoints.

        Args:
            source_image: (B or 1, C, H, W) in [0, 1]; batch 1 is broadcast over the keypoint batch.
            kp_driving: (B, K, ...) driving keypoints (already normalised by the caller if relative).
            kp_source: (B or 1, K, ...) keypoints of the source image.
            noise: one (B, 1, S, S) N(0, 1) tensor per memory call (coarsest first). If None, each call's
                (B, 1, S, S) map is drawn in call order, as the reference does: from `rng` when given,
                else from torch's default generator of the feature's device (`new_empty().normal_()`).
                Streaming inference passes `draw_noise(...)` instead, which is frame-major.
            rng: generator for the noise when `noise` is None.
            encoding: `encode_source(source_image)` computed earlier; skips the encoder when given.

        Returns:
            GeneratorOutput; `prediction` is (B, C, H, W).
        """
        batch = kp_driving.value.shape[0]
        if encoding is None:
            encoding = self.encode_source(source_image)
        encoding = encoding.expand(batch)
        if kp_source.value.shape[0] != batch:
            kp_source = kp_source.expand(batch)
        reference = encoding.features[-1]
        # The decoder and memory unit may hold low-precision weights (fast mode, `use_low_precision`);
        # the encoder, the flow and every warp stay float32, so inputs are cast at that boundary.
        work = self.final.weight.dtype
        if noise is None:
            shape = self.mbUnit.noise_shape(batch)
            if rng is None:
                noise = [reference.new_empty(shape).normal_() for _ in range(self.memory_calls)]
            else:
                noise = [
                    torch.randn(shape, generator=rng, device=rng.device) for _ in range(self.memory_calls)
                ]
        if len(noise) != self.memory_calls:
            raise InputShapeError(f"`noise` needs {self.memory_calls} tensors, got {len(noise)}")
        noise = [n.to(device=reference.device, dtype=work) for n in noise]

        # Flow and occlusion stay in full precision even under autocast: a bf16 sampling grid misplaces
        # pixels by up to a pixel at 256x256. This is 2 % of the work.
        with torch.autocast(device_type=reference.device.type, enabled=False):
            motion = self.dense_motion_network(
                encoding.motion_source, kp_driving=kp_driving, kp_source=kp_source
            )
        deformation, occlusion = motion.deformation, motion.occlusion_map

        out = _occlude(_warp(encoding.features[-1], deformation), occlusion)
        warped = [out]
        memory_features, memory_values = [], []
        compensated = self.mbUnit(out.to(work), kp_source.value, noise[0])
        memory_features.append(compensated.feature)
        memory_values.append(compensated.value)
        out = compensated.output
        n = self.config.gen_num_down_blocks
        skip = out
        for i in range(n):
            out = self.resblock[2 * i + 1](self.resblock[2 * i](out))
            out = self.up_blocks[i](out)
            skip = _occlude(_warp(encoding.features[-(i + 2)], deformation), occlusion)
            warped.append(skip)
            if i == n - 1:
                break
            compensated = self.mbUnit(skip.to(work), kp_source.value, noise[i + 1])
            memory_features.append(compensated.feature)
            memory_values.append(compensated.value)
            out = torch.cat([out, compensated.output.to(out.dtype)], 1)

        deformed = _warp(encoding.image, deformation)
        occlusion_full = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear", align_corners=True)
        out = out * (1 - occlusion_full) + skip
        out = torch.sigmoid(self.final(out.to(work)))
        prediction = out * (1 - occlusion_full) + deformed * occlusion_full
        return GeneratorOutput(
            prediction=prediction,
            deformed=deformed,
            occlusion_map=occlusion,
            deformation=deformation,
            mask=motion.mask,
            sparse_deformed=motion.sparse_deformed,
            warped_features=tuple(warped),
            memory_features=tuple(memory_features),
            memory_values=tuple(memory_values),
            kp_source=kp_source,
            kp_driving=kp_driving,
        )
