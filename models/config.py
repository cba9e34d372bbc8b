"""The architecture of one MCNet model as frozen data; it is stored beside (or inside) every checkpoint.

The released vox-256 model (`vox256()`) is the configuration the authors' README actually runs
(`--kp_num 15 --mbunit ExpendMemoryUnit`, 32x32x512 memory, Jacobians and occlusion on); the YAML in their
repository disagrees with it, which is why the truth lives here and travels with the weights.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from models.errors import ConfigError

CONFIG_FORMAT = "likeness.mcnet.config/1"


@dataclass(frozen=True)
class MCNetConfig:
    """Every architecture knob that changes a tensor shape or a number; nothing else.

    Attributes:
        image_size: side of the square RGB input and output (256 for the released model).
        num_channels: image channels (3).
        num_kp: keypoints K; the memory's style MLP takes 2*K keypoint coordinates.
        estimate_jacobian: predict a 2x2 Jacobian per keypoint (first-order motion).
        kp_block_expansion, kp_max_features, kp_num_blocks: keypoint hourglass width/depth.
        kp_scale_factor: the keypoint detector runs on the image down-sampled by this factor (1/integer).
        kp_temperature: softmax temperature of the keypoint heatmaps.
        gen_block_expansion, gen_max_features, gen_num_down_blocks: generator U-Net; the decoder and
            the memory unit require `gen_max_features == gen_block_expansion * 2**gen_num_down_blocks`.
        motion_block_expansion, motion_max_features, motion_num_blocks: dense-motion hourglass.
        motion_scale_factor: the dense-motion network runs on the source down-sampled by this factor.
        motion_kp_variance: variance of the Gaussian keypoint heatmaps in the dense-motion input.
        memory_spatial: side of the learned meta-memory bank (32).
        memory_channels: channels of the memory bank, of the projected features and of the style code (512).
        memory_style_hidden: hidden width of the MLP that maps (pooled feature, source keypoints) to a style.
        memory_kernels: number of candidate kernels mixed by the dynamic key/value convolution (4).
        memory_temperature: softmax temperature of the dynamic-convolution mixing weights (34).
        memory_attention_divisor: the memory attention is softmax(q k^T / divisor) (4, not sqrt(d)).
    """

    image_size: int = 256
    num_channels: int = 3
    num_kp: int = 15
    estimate_jacobian: bool = True
    kp_block_expansion: int = 32
    kp_max_features: int = 1024
    kp_num_blocks: int = 5
    kp_scale_factor: float = 0.25
    kp_temperature: float = 0.1
    gen_block_expansion: int = 64
    gen_max_features: int = 512
    gen_num_down_blocks: int = 3
    motion_block_expansion: int = 64
    motion_max_features: int = 1024
    motion_num_blocks: int = 5
    motion_scale_factor: float = 0.25
    motion_kp_variance: float = 0.01
    memory_spatial: int = 32
    memory_channels: int = 512
    memory_style_hidden: int = 128
    memory_kernels: int = 4
    memory_temperature: float = 34.0
    memory_attention_divisor: float = 4.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "bool":
                if not isinstance(value, bool):
                    raise ConfigError(f"config field `{field.name}` must be a bool, got {value!r}")
            elif field.type == "int":
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise ConfigError(f"config field `{field.name}` must be a positive int, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"config field `{field.name}` must be a positive number, got {value!r}")
        for name in ("kp_scale_factor", "motion_scale_factor"):
            scale = getattr(self, name)
            inverse = 1 / scale
            if scale > 1 or abs(inverse - round(inverse)) > 1e-9 or self.image_size % round(inverse):
                raise ConfigError(
                    f"config field `{name}` must be 1/n with n dividing image_size, got {scale!r}"
                )
        if self.image_size % (2**self.gen_num_down_blocks):
            raise ConfigError(
                f"`image_size` {self.image_size} is not divisible by 2**gen_num_down_blocks "
                f"({2**self.gen_num_down_blocks})"
            )
        if self.gen_max_features != self.gen_block_expansion * 2**self.gen_num_down_blocks:
            raise ConfigError(
                "`gen_max_features` must equal gen_block_expansion * 2**gen_num_down_blocks "
                f"({self.gen_block_expansion * 2**self.gen_num_down_blocks}), got {self.gen_max_features}"
            )
        if self.keypoint_grid_size <= 0:
            raise ConfigError(
                f"keypoint map {self.keypoint_input_size} is too small for the 7x7 keypoint head"
            )
        if self.gen_block_expansion % 2:
            raise ConfigError("`gen_block_expansion` must be even (the memory splits channels in halves)")

    # Derived sizes: one place, so networks and tests agree.
    @property
    def keypoint_input_size(self) -> int:
        """Side of the image the keypoint hourglass sees (64 for vox-256)."""
        return round(self.image_size * self.kp_scale_factor)

    @property
    def keypoint_grid_size(self) -> int:
        """Side of the keypoint heatmaps: the 7x7 head has no padding (58 for vox-256)."""
        return self.keypoint_input_size - 6

    @property
    def motion_size(self) -> int:
        """Side of the dense flow and occlusion map (64 for vox-256)."""
        return round(self.image_size * self.motion_scale_factor)

    @property
    def encoder_channels(self) -> tuple[int, ...]:
        """Channels of the generator encoder maps, full resolution first (64, 128, 256, 512)."""
        be, mf = self.gen_block_expansion, self.gen_max_features
        return tuple(min(mf, be * 2**i) for i in range(self.gen_num_down_blocks + 1))

    @property
    def memory_widths(self) -> tuple[int, ...]:
        """Feature widths at which the memory unit is called, coarsest first (32, 64, 128)."""
        n = self.gen_num_down_blocks
        return tuple(self.image_size // 2 ** (n - i) for i in range(n))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, tagged with the format so a reader can refuse a foreign file."""
        return {"format": CONFIG_FORMAT, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys) of this configuration."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_dict(cls, data: Any) -> MCNetConfig:
        """Rebuild a configuration; unknown, missing or mistyped keys are refused, never defaulted.

        Raises:
            ConfigError: naming the first offending key.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"config must be a JSON object, got {type(data).__name__}")
        if data.get("format") != CONFIG_FORMAT:
            raise ConfigError(f"config `format` must be {CONFIG_FORMAT!r}, got {data.get('format')!r}")
        names = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names) - {"format"})
        if unknown:
            raise ConfigError(f"unknown config key `{unknown[0]}`")
        missing = [name for name in names if name not in data]
        if missing:
            raise ConfigError(f"missing config key `{missing[0]}`")
        values = {}
        for field in dataclasses.fields(cls):
            value = data[field.name]
            if field.type == "float" and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if field.type == "float" and not isinstance(value, float):
                raise ConfigError(f"config field `{field.name}` must be a number, got {value!r}")
            values[field.name] = value
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> MCNetConfig:
        """Parse JSON text written by `to_json`.

        Raises:
            ConfigError: the text is not JSON or not a valid configuration.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        return cls.from_dict(data)


def vox256() -> MCNetConfig:
    """The configuration of the authors' released vox-256 checkpoint (about 102 M parameters)."""
    return MCNetConfig()


def tiny() -> MCNetConfig:
    """A small 64x64 configuration with the same topology, fast enough for CPU tests (about 0.6 M params)."""
    return MCNetConfig(
        image_size=64,
        num_kp=5,
        kp_block_expansion=8,
        kp_max_features=64,
        kp_num_blocks=3,
        kp_scale_factor=0.5,
        gen_block_expansion=8,
        gen_max_features=64,
        gen_num_down_blocks=3,
        motion_block_expansion=8,
        motion_max_features=64,
        motion_num_blocks=3,
        motion_scale_factor=0.5,
        memory_spatial=8,
        memory_channels=32,
        memory_style_hidden=16,
    )
