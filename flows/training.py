"""Training as the CLI runs it: prepare clips from videos (pipeline), then train or evaluate (models).

A thin composition layer, so `console/` never reaches into `models/`; no Prefect here (training is an
offline, operator-run job, not part of the governed batch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from models.config import MCNetConfig
from models.errors import ModelError
from models.inference import resolve_device
from models.loading import load_mcnet
from models.training.clips import MANIFEST, ClipManifest, read_manifest
from models.training.dataset import evaluation_pairs
from models.training.errors import TrainingDataError
from models.training.evaluation import EvaluationReport, evaluate
from models.training.export import STORAGE_DTYPES, export_checkpoint
from models.training.presets import PRESETS, resolve_config
from models.training.trainer import StepReport, Trainer, TrainingResult, TrainingSpec
from pipeline.errors import PipelineError
from pipeline.training_frames import prepare_training_data

logger = logging.getLogger(__name__)

# What the CLI turns into one-line errors: bad data, settings, checkpoints; anything else is a bug.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (ModelError, PipelineError)

__all__ = [
    "EXPECTED_ERRORS",
    "PRESETS",
    "EvaluationReport",
    "StepReport",
    "TrainingResult",
    "TrainingSpec",
    "STORAGE_DTYPES",
    "evaluate_checkpoint",
    "export_model",
    "prepare_data",
    "resolve_config",
    "train_model",
]


def prepare_data(
    inputs: Sequence[Path], out_dir: Path, *, size: int, heldout_fraction: float = 0.2, max_frames: int | None = None
) -> ClipManifest:
    """Decode videos / frame folders into a training data folder (see `pipeline.training_frames`)."""
    return prepare_training_data(
        inputs, out_dir, size=size, heldout_fraction=heldout_fraction, max_frames=max_frames
    )


def _data_folder(data: Sequence[Path], run_dir: Path, config: MCNetConfig, heldout_fraction: float) -> Path:
    """A prepared folder as given, else the run's own `data/` (prepared on first use, reused on resume)."""
    if len(data) == 1 and (Path(data[0]) / MANIFEST).is_file():
        return Path(data[0])
    prepared = run_dir / "data"
    if (prepared / MANIFEST).is_file():
        logger.info("reusing the training data prepared in %s", prepared)
        return prepared
    prepare_training_data(data, prepared, size=config.image_size, heldout_fraction=heldout_fraction)
    return prepared


def train_model(
    data: Sequence[Path],
    run_dir: Path,
    *,
    config: MCNetConfig,
    spec: TrainingSpec,
    device: str = "auto",
    vgg_weights: Path | None = None,
    resume: bool = False,
    heldout_fraction: float = 0.2,
    max_seconds: float | None = None,
    threads: int | None = None,
    progress: Callable[[StepReport], None] | None = None,
) -> TrainingResult:
    """Train an MCNet; `data` is one prepared folder, or videos / frame folders to prepare first.

    Raises:
        ModelError / InputError subclasses with one-line messages on bad data, settings or checkpoints.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        folder = _data_folder(data, run_dir, config, heldout_fraction)
        trainer = Trainer(
            config,
            spec,
            data_root=folder,
            run_dir=run_dir,
            device=resolve_device(device),
            vgg_weights=vgg_weights,
            resume=resume,
        )
    except BaseException:
        if created and not any(run_dir.iterdir()):
            run_dir.rmdir()  # a run that never started leaves nothing behind
        raise
    return trainer.run(progress, max_seconds=max_seconds)


def evaluate_checkpoint(
    checkpoint: Path,
    data: Path,
    *,
    device: str = "auto",
    expected_sha256: str | None = None,
    per_clip: int = 16,
    seed: int = 0,
) -> EvaluationReport:
    """Held-out L1 / PSNR / SSIM of a checkpoint against the copy-source baseline on a prepared folder."""
    target = resolve_device(device)
    loaded = load_mcnet(checkpoint, expected_sha256=expected_sha256, device=target, dtype=torch.float32)
    manifest = read_manifest(Path(data))
    if manifest.image_size != loaded.config.image_size:
        raise TrainingDataError(
            f"data frames are {manifest.image_size}px but the checkpoint's model takes {loaded.config.image_size}px"
        )
    pairs = evaluation_pairs(manifest, per_clip=per_clip)
    return evaluate(loaded.model, pairs, device=target, seed=seed)


def export_model(source: Path, target: Path, *, storage: str = "float32") -> str:
    """Strip optimiser and random states from a training checkpoint (see `models.training.export`)."""
    return export_checkpoint(source, target, storage=storage)
