"""The MCNet training loop: Adam as in the paper, checkpoints in the authors' format, resume, evaluation.

One step: sample a batch of same-clip (source, driving) pairs, detect keypoints on both, reconstruct the
driving frame from the source, and minimise reconstruction + equivariance + feature-consistency losses.
The keypoint detector and the generator are updated jointly (separate Adam optimisers, gradients clipped
to norm 10 each); a non-finite loss skips the step. Checkpoints hold both optimisers and every random
state, so a resumed run continues exactly where the last checkpoint left it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from models.config import MCNetConfig
from models.loading import file_sha256, load_mcnet, save_checkpoint
from models.mcnet import MCNet
from models.training.augment import AugmentationParams
from models.training.clips import read_manifest
from models.training.dataset import PairSampler, evaluation_pairs
from models.training.errors import TrainingError
from models.training.evaluation import EvaluationReport, evaluate
from models.training.losses import (
    LossWeights,
    ReconstructionLoss,
    equivariance_losses,
    feature_consistency_loss,
)
from models.training.transforms import RandomTransform, TransformParams
from models.training.vgg import load_vgg19

logger = logging.getLogger(__name__)

LAST = "last.pth.tar"
BEST = "best.pth.tar"
TRAINING_KEY = "training"


@dataclass(frozen=True)
class TrainingSpec:
    """How to train (not what: the architecture is the `MCNetConfig`).

    Attributes:
        steps: total optimisation steps of the run (a resumed run stops at the same total).
        batch_size: pairs per step.
        lr, betas: Adam settings of both networks (paper: 2e-4, (0.5, 0.999)).
        lr_milestones, lr_gamma: multiply the learning rate by gamma at these steps.
        grad_clip: max L2 norm of each network's gradient.
        scales: pyramid scales of the reconstruction loss.
        weights: loss weights.
        transform: equivariance warp noise.
        augmentation: flips and colour jitter of training pairs (None: off).
        checkpoint_every: steps between `last.pth.tar` saves (the final step is always saved).
        eval_every: steps between held-out evaluations (0: only at the end); the best held-out L1 is kept
            as `best.pth.tar`.
        eval_pairs_per_clip: driving frames per held-out clip.
        seed: seeds weights, pair sampling, warps and memory noise.
    """

    steps: int
    batch_size: int = 4
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    grad_clip: float = 10.0
    scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
    weights: LossWeights = field(default_factory=LossWeights)
    transform: TransformParams = field(default_factory=TransformParams)
    augmentation: AugmentationParams | None = field(default_factory=AugmentationParams)
    checkpoint_every: int = 250
    eval_every: int = 0
    eval_pairs_per_clip: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise TrainingError(f"`steps` and `batch_size` must be >= 1, got {self.steps} and {self.batch_size}")
        if self.batch_size < 2:
            raise TrainingError("`batch_size` must be >= 2: BatchNorm needs more than one sample per step")
        if self.checkpoint_every < 1 or self.eval_every < 0:
            raise TrainingError("`checkpoint_every` must be >= 1 and `eval_every` >= 0")
        if not self.lr > 0:
            raise TrainingError(f"`lr` must be positive, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StepReport:
    """What the progress callback receives after every step."""

    step: int
    total: int
    losses: dict[str, float]
    skipped: bool
    seconds: float


@dataclass(frozen=True)
class TrainingResult:
    """The outcome of `Trainer.run`."""

    steps: int
    last_checkpoint: Path
    last_sha256: str
    best_checkpoint: Path | None
    reconstruction_loss: str
    evaluation: EvaluationReport | None
    history: list[dict[str, Any]]


def _lr_at(spec: TrainingSpec, step: int) -> float:
    return spec.lr * spec.lr_gamma ** sum(1 for milestone in spec.lr_milestones if step >= milestone)


class Trainer:
    """Trains one MCNet on one prepared data folder, writing checkpoints to `run_dir`.

    Args:
        config: the architecture (must match a checkpoint resumed from).
        spec: the training settings.
        data_root: folder written by `ClipWriter` (train and, for evaluation, heldout clips).
        run_dir: where `last.pth.tar`, `best.pth.tar` and `history.jsonl` go.
        device: torch device.
        vgg_weights: local VGG19 state dict for the perceptual loss; None -> L1 fallback (logged).
        resume: continue from `run_dir/last.pth.tar` when it exists.
    """

    def __init__(
        self,
        config: MCNetConfig,
        spec: TrainingSpec,
        *,
        data_root: Path,
        run_dir: Path,
        device: torch.device,
        vgg_weights: Path | None = None,
        resume: bool = False,
    ) -> None:
        self.config, self.spec, self.device = config, spec, device
        self.run_dir = Path(run_dir)
        self.manifest = read_manifest(Path(data_root))
        self.sampler = PairSampler(
            self.manifest, image_size=config.image_size, augmentation=spec.augmentation, seed=spec.seed
        )
        self.eval_pairs = (
            evaluation_pairs(self.manifest, per_clip=spec.eval_pairs_per_clip)
            if self.manifest.split("heldout")
            else []
        )
        vgg = None if vgg_weights is None else load_vgg19(vgg_weights, device=device)
        self.reconstruction = ReconstructionLoss(spec.scales, spec.weights, vgg).to(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            self.model = MCNet(config)
        self.model.to(device).train()
        self.optimizer_generator = torch.optim.Adam(self.model.generator.parameters(), lr=spec.lr, betas=spec.betas)
        self.optimizer_kp_detector = torch.optim.Adam(
            self.model.kp_detector.parameters(), lr=spec.lr, betas=spec.betas
        )
        self.warp_rng = torch.Generator().manual_seed(spec.seed + 1)
        self.noise_rng = torch.Generator().manual_seed(spec.seed + 2)
        self.step = 0
        self.best_l1 = math.inf
        last = self.run_dir / LAST
        if resume and last.is_file():
            self._resume(last)
        elif last.is_file():
            raise TrainingError(f"{last} exists: pass resume to continue that run, or choose another run folder")

    # -- checkpoints ---------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "epoch": self.step,  # the authors' key; one "epoch" per step here
            "optimizer_generator": self.optimizer_generator.state_dict(),
            "optimizer_kp_detector": self.optimizer_kp_detector.state_dict(),
            TRAINING_KEY: {
                "step": self.step,
                "spec": json.dumps(self.spec.to_dict(), sort_keys=True),
                "sampler": self.sampler.state_dict(),
                "warp_rng": self.warp_rng.get_state(),
                "noise_rng": self.noise_rng.get_state(),
                "best_l1": self.best_l1,
                "reconstruction_loss": self.reconstruction.kind,
            },
        }

    def _save(self, name: str) -> str:
        return save_checkpoint(
            self.run_dir / name,
            config=self.config,
            generator=self.model.generator,
            kp_detector=self.model.kp_detector,
            extra=self._state(),
        )

    def _resume(self, path: Path) -> None:
        loaded = load_mcnet(path, device=self.device)
        if loaded.config != self.config:
            raise TrainingError(f"{path} was trained with another architecture than the one requested")
        state = loaded.extra.get(TRAINING_KEY)
        if not isinstance(state, dict) or "step" not in state:
            raise TrainingError(f"{path} has no training state to resume from")
        if state.get("reconstruction_loss") != self.reconstruction.kind:
            raise TrainingError(
                f"{path} was trained with the {state.get('reconstruction_loss')} reconstruction loss, "
                f"this run uses {self.reconstruction.kind}"
            )
        self.model.load_state_dict(loaded.model.state_dict())
        self.model.train()
        self.optimizer_generator.load_state_dict(loaded.extra["optimizer_generator"])
        self.optimizer_kp_detector.load_state_dict(loaded.extra["optimizer_kp_detector"])
        self.sampler.load_state_dict(state["sampler"])
        self.warp_rng.set_state(state["warp_rng"])
        self.noise_rng.set_state(state["noise_rng"])
        self.step = int(state["step"])
        self.best_l1 = float(state["best_l1"])
        logger.info("resumed training from %s at step %d", path, self.step)

    # -- one step ------------------------------------------------------------------------------------
    def _losses(self, source: Tensor, driving: Tensor) -> dict[str, Tensor]:
        model, weights = self.model, self.spec.weights
        kp_source = model.kp_detector(source)
        kp_driving = model.kp_detector(driving)
        output = model.generator(source, kp_driving=kp_driving, kp_source=kp_source, rng=self.noise_rng)
        losses = {"reconstruction": self.reconstruction(output.prediction, driving)}
        transform = RandomTransform(
            source.shape[0], self.spec.transform, generator=self.warp_rng, device=self.device, dtype=source.dtype
        )
        value, jacobian = equivariance_losses(model.kp_detector, driving, kp_driving, transform)
        losses["equivariance_value"] = weights.equivariance_value * value
        if jacobian is not None:
            losses["equivariance_jacobian"] = weights.equivariance_jacobian * jacobian
        losses["feature_consistency"] = weights.feature_consistency * feature_consistency_loss(output)
        return losses

    def train_step(self) -> tuple[dict[str, float], bool]:
        """One optimisation step; returns the loss values and whether the step was skipped (non-finite)."""
        lr = _lr_at(self.spec, self.step)
        for optimizer in (self.optimizer_generator, self.optimizer_kp_detector):
            for group in optimizer.param_groups:
                group["lr"] = lr
        pair = self.sampler.sample(self.spec.batch_size)
        source, driving = pair.source.to(self.device), pair.driving.to(self.device)
        losses = self._losses(source, driving)
        total = sum(losses.values(), torch.zeros((), device=self.device))
        self.optimizer_generator.zero_grad(set_to_none=True)
        self.optimizer_kp_detector.zero_grad(set_to_none=True)
        skipped = not bool(torch.isfinite(total))
        if skipped:
            logger.warning("step %d: non-finite loss %s, step skipped", self.step + 1, float(total.detach()))
        else:
            total.backward()
            torch.nn.utils.clip_grad_norm_(self.model.generator.parameters(), self.spec.grad_clip)
            torch.nn.utils.clip_grad_norm_(self.model.kp_detector.parameters(), self.spec.grad_clip)
            self.optimizer_generator.step()
            self.optimizer_kp_detector.step()
        self.step += 1
        values = {name: float(value.detach()) for name, value in losses.items()}
        values["total"] = float(total.detach())
        return values, skipped

    def evaluate(self) -> EvaluationReport | None:
        """Held-out scores now (None when the data has no held-out clips)."""
        if not self.eval_pairs:
            return None
        return evaluate(self.model, self.eval_pairs, device=self.device, seed=self.spec.seed)

    # -- the loop ------------------------------------------------------------------------------------
    def run(
        self, progress: Callable[[StepReport], None] | None = None, *, max_seconds: float | None = None
    ) -> TrainingResult:
        """Train up to `spec.steps`, checkpointing and evaluating on the way.

        Args:
            progress: called after every step.
            max_seconds: wall-time budget; when spent, the run evaluates, saves and stops early (a later
                resumed run continues to `spec.steps`).
        """
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self.run_dir.mkdir(parents=True, exist_ok=True)
        history_path = self.run_dir / "history.jsonl"
        history: list[dict[str, Any]] = []
        report: EvaluationReport | None = None
        last_sha = ""
        best: Path | None = self.run_dir / BEST if (self.run_dir / BEST).is_file() else None
        if self.step >= self.spec.steps:
            logger.info("run already at step %d of %d: nothing to train", self.step, self.spec.steps)
        while self.step < self.spec.steps:
            started = time.perf_counter()
            values, skipped = self.train_step()
            entry: dict[str, Any] = {"step": self.step, "losses": values, "skipped": skipped}
            if progress is not None:
                progress(StepReport(self.step, self.spec.steps, values, skipped, time.perf_counter() - started))
            out_of_time = deadline is not None and time.monotonic() >= deadline
            final = self.step == self.spec.steps or out_of_time
            if out_of_time and self.step < self.spec.steps:
                logger.warning("time budget spent at step %d of %d: stopping early", self.step, self.spec.steps)
            if (self.spec.eval_every and self.step % self.spec.eval_every == 0) or final:
                report = self.evaluate()
                if report is not None:
                    entry["heldout"] = report.as_dict()
                    logger.info(
                        "step %d held-out L1 %.4f PSNR %.2f dB (copy-source L1 %.4f PSNR %.2f dB)",
                        self.step, report.model.l1, report.model.psnr, report.copy_source.l1, report.copy_source.psnr,
                    )
                    if report.model.l1 < self.best_l1:
                        self.best_l1 = report.model.l1
                        best = self.run_dir / BEST
                        self._save(BEST)
            if self.step % self.spec.checkpoint_every == 0 or final:
                last_sha = self._save(LAST)
            history.append(entry)
            with history_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
            if out_of_time:
                break
        if not last_sha:  # nothing trained in this call (already at `steps`)
            last_sha = file_sha256(self.run_dir / LAST) if (self.run_dir / LAST).is_file() else self._save(LAST)
        return TrainingResult(
            steps=self.step,
            last_checkpoint=self.run_dir / LAST,
            last_sha256=last_sha,
            best_checkpoint=best,
            reconstruction_loss=self.reconstruction.kind,
            evaluation=report,
            history=history,
        )
