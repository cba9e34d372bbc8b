"""Named architectures for training: the released vox-256, the test-sized tiny, and the demo's 128x128.

A checkpoint always carries its full config, so a preset name is only a starting point for new runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from models.config import MCNetConfig, tiny, vox256
from models.training.errors import TrainingError


def demo128() -> MCNetConfig:
    """A small 128x128 MCNet (same topology, about 2 M parameters) that trains on a CPU in minutes.

    128x128 keeps faces large enough for dlib's detector and identity embedding on the output, while a
    training step (batch 4, about 29 GFLOP forward and backward) stays near a second on two busy cores.
    """
    return MCNetConfig(
        image_size=128,
        num_kp=10,
        kp_block_expansion=16,
        kp_max_features=128,
        kp_num_blocks=4,
        kp_scale_factor=0.25,
        gen_block_expansion=8,
        gen_max_features=64,
        gen_num_down_blocks=3,
        motion_block_expansion=16,
        motion_max_features=128,
        motion_num_blocks=4,
        motion_scale_factor=0.25,
        memory_spatial=16,
        memory_channels=64,
        memory_style_hidden=32,
    )


PRESETS: dict[str, Callable[[], MCNetConfig]] = {"vox256": vox256, "tiny": tiny, "demo128": demo128}


def resolve_config(name_or_path: str) -> MCNetConfig:
    """A preset name (vox256, tiny, demo128) or the path of a config JSON file.

    Raises:
        TrainingError: neither a preset nor a readable file (a bad file raises its `ConfigError`).
    """
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]()
    path = Path(name_or_path)
    if not path.is_file():
        raise TrainingError(f"config {name_or_path!r} is neither a preset ({', '.join(PRESETS)}) nor a file")
    return MCNetConfig.from_json(path.read_text(encoding="utf-8"))
