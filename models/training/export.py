"""Export a training checkpoint for inference: the networks, the config and the step, nothing else.

Training checkpoints carry both Adam states and the random states (three times the weights); an exported
one is what gets shipped (optionally stored in float16 to halve it: `load_mcnet` converts floats back to
the model's dtype on load, so the file works unchanged with the inference path).
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.loading import load_mcnet, save_checkpoint
from models.training.errors import TrainingError

STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def export_checkpoint(source: Path, target: Path, *, storage: str = "float32") -> str:
    """Write `target` with the weights of `source` in `storage` precision; returns its sha256.

    Raises:
        TrainingError: unknown storage dtype or `target` is `source`.
        CheckpointError: `source` is not a loadable MCNet checkpoint.
    """
    if storage not in STORAGE_DTYPES:
        raise TrainingError(f"storage dtype must be one of {', '.join(STORAGE_DTYPES)}, got {storage!r}")
    if Path(source).resolve() == Path(target).resolve():
        raise TrainingError("export target must differ from the source checkpoint")
    loaded = load_mcnet(source, device="cpu")
    model = loaded.model.to(STORAGE_DTYPES[storage])
    step = loaded.extra.get("epoch", 0)
    return save_checkpoint(
        target,
        config=loaded.config,
        generator=model.generator,
        kp_detector=model.kp_detector,
        extra={"epoch": int(step) if isinstance(step, int) else 0},
    )
