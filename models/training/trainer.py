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
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from models.config import MCNetConfig
from models.digest import sha256_file
from models.keypoint_detector import KeypointOutput
from models.loading import load_mcnet, save_checkpoint
from models.mcnet import MCNet
from models.training.augment import AugmentationParams
from models.training.clips import read_manifest
from models.training.dataset import FramePair, PairSampler, StepBatches, evaluation_pairs
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
        shards: the global batch (`batch_size` pairs) is processed as this many equal shards, each with its
            own BatchNorm statistics, their gradients averaged: one or more per process under
            DistributedDataParallel (`shards` must be a multiple of the number of processes), in turn
            (gradient accumulation) in a single process. The same `shards` gives the same training on
            1 or N processes, up to float summation order.
        bf16: run the forward passes under bfloat16 autocast (the flow and warps stay float32).
        workers: load the pairs in this many worker processes (torch DataLoader, prefetching). Then each
            step's pairs come from a generator seeded by (seed, step) (`PairSampler.sample_at`): the same
            for any number of workers >= 1, but another sequence than the in-process sampler's (0).
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
    shards: int = 1
    bf16: bool = False
    workers: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise TrainingError(
                f"`steps` and `batch_size` must be >= 1, got {self.steps} and {self.batch_size}"
            )
        if self.batch_size < 2:
            raise TrainingError("`batch_size` must be >= 2: BatchNorm needs more than one sample per step")
        if self.workers < 0:
            raise TrainingError(f"`workers` must be >= 0, got {self.workers}")
        if self.checkpoint_every < 1 or self.eval_every < 0:
            raise TrainingError("`checkpoint_every` must be >= 1 and `eval_every` >= 0")
        if not self.lr > 0:
            raise TrainingError(f"`lr` must be positive, got {self.lr}")
        if self.shards < 1 or self.batch_size % self.shards or self.batch_size // self.shards < 2:
            raise TrainingError(
                f"`batch_size` {self.batch_size} must split into {self.shards} shard(s) of at least 2 pairs each"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingSpec:
        """The inverse of `to_dict` (after a JSON round trip: lists back to tuples, nested settings rebuilt)."""
        values = dict(data)
        weights: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values["weights"].items()
        }
        values["weights"] = LossWeights(**weights)
        values["transform"] = TransformParams(**values["transform"])
        augmentation = values.get("augmentation")
        values["augmentation"] = None if augmentation is None else AugmentationParams(**augmentation)
        for name in ("betas", "lr_milestones", "scales"):
            values[name] = tuple(values[name])
        return cls(**values)


@dataclass(frozen=True)
class StepReport:
    """What the progress callback receives after every step."""

    step: int
    total: int
    losses: dict[str, float]
    skipped: bool
    seconds: float
    pairs_per_second: float = 0.0  # global pairs (all processes) per second, averaged over recent steps
    eta_seconds: float | None = None  # at that rate, until `total`


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


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torch.distributed group (already initialised, e.g. by torchrun)."""

    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, history and progress; the others only compute."""
        return self.rank == 0


SINGLE = Distributed(rank=0, world_size=1)


class _StepLosses(nn.Module):
    """The losses of one shard as one module call, so DistributedDataParallel sees every use of the weights."""

    def __init__(self, model: MCNet, reconstruction: ReconstructionLoss, weights: LossWeights) -> None:
        super().__init__()
        self.model, self.reconstruction, self.weights = model, reconstruction, weights

    def _keypoints(self, image: Tensor) -> KeypointOutput:
        """Keypoints in float32 whatever autocast computed them in: Jacobians are inverted downstream,
        which bf16 does not support (a no-op without autocast)."""
        found = self.model.kp_detector(image)
        jacobian = None if found.jacobian is None else found.jacobian.float()
        return KeypointOutput(value=found.value.float(), jacobian=jacobian)

    def forward(
        self, source: Tensor, driving: Tensor, transform: RandomTransform, noise: list[Tensor]
    ) -> dict[str, Tensor]:
        model, weights = self.model, self.weights
        kp_source = self._keypoints(source)
        kp_driving = self._keypoints(driving)
        output = model.generator(source, kp_driving=kp_driving, kp_source=kp_source, noise=noise)
        losses = {"reconstruction": self.reconstruction(output.prediction.float(), driving)}
        value, jacobian = equivariance_losses(self._keypoints, driving, kp_driving, transform)  # type: ignore[arg-type]
        losses["equivariance_value"] = weights.equivariance_value * value.float()
        if jacobian is not None:
            losses["equivariance_jacobian"] = weights.equivariance_jacobian * jacobian.float()
        losses["feature_consistency"] = weights.feature_consistency * feature_consistency_loss(output).float()
        return losses


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
        distributed: this process's rank in an initialised process group (None: a single process). Every
            rank draws the same global batch, warps and noise from the same seeds and computes its own
            shards of it; DistributedDataParallel averages the gradients; rank 0 alone writes.
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
        distributed: Distributed | None = None,
    ) -> None:
        self.config, self.spec, self.device = config, spec, device
        self.dist = distributed or SINGLE
        if spec.shards % self.dist.world_size:
            raise TrainingError(
                f"`shards` {spec.shards} is not a multiple of the {self.dist.world_size} training processes"
            )
        if self.dist.world_size > 1 and not (dist.is_available() and dist.is_initialized()):
            raise TrainingError(
                "a distributed trainer needs an initialised process group (run it under torchrun)"
            )
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
        self.shard_losses = _StepLosses(self.model, self.reconstruction, spec.weights)
        self.step_losses: nn.Module = self.shard_losses
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [device.index] if device.type == "cuda" and device.index is not None else None
            self.step_losses = DistributedDataParallel(self.step_losses, device_ids=ids)
        self.optimizer_generator = torch.optim.Adam(
            self.model.generator.parameters(), lr=spec.lr, betas=spec.betas
        )
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
            raise TrainingError(
                f"{last} exists: pass resume to continue that run, or choose another run folder"
            )

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
    def _draw(self, batch: int) -> tuple[RandomTransform, list[Tensor]]:
        """The step's equivariance warps and memory noise for `batch` pairs, from the trainer's generators."""
        transform = RandomTransform(batch, self.spec.transform, generator=self.warp_rng, device=self.device)
        generator = self.model.generator
        noise = [
            torch.randn(generator.mbUnit.noise_shape(batch), generator=self.noise_rng)
            for _ in range(generator.memory_calls)
        ]
        return transform, noise

    def _losses(self, source: Tensor, driving: Tensor) -> dict[str, Tensor]:
        """The losses of one batch in this process, outside DDP (a probe for tests and diagnostics)."""
        transform, noise = self._draw(source.shape[0])
        return self.shard_losses(source.to(self.device), driving.to(self.device), transform, noise)

    def _any_rank(self, flag: bool) -> bool:
        """Whether `flag` holds on any process (every rank takes the same decision)."""
        if self.dist.world_size == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def _mean_over_ranks(self, values: dict[str, float]) -> dict[str, float]:
        if self.dist.world_size == 1:
            return values
        names = sorted(values)
        packed = torch.tensor([values[name] for name in names], dtype=torch.float64)
        dist.all_reduce(packed)
        return {name: float(v) / self.dist.world_size for name, v in zip(names, packed.tolist(), strict=True)}

    def train_step(self, pair: FramePair | None = None) -> tuple[dict[str, float], bool]:
        """One optimisation step; returns the loss values (mean over the global batch) and whether the step
        was skipped (a non-finite loss on any shard of any process). `pair`: the step's global batch when
        a loader drew it (else the sampler draws it here)."""
        lr = _lr_at(self.spec, self.step)
        for optimizer in (self.optimizer_generator, self.optimizer_kp_detector):
            for group in optimizer.param_groups:
                group["lr"] = lr
        batch = self.spec.batch_size
        if pair is None:
            pair = self.sampler.sample(batch)
        source, driving = pair.source.to(self.device), pair.driving.to(self.device)
        transform, noise = self._draw(batch)
        per_shard = batch // self.spec.shards
        mine = self.spec.shards // self.dist.world_size
        first = self.dist.rank * mine
        self.optimizer_generator.zero_grad(set_to_none=True)
        self.optimizer_kp_detector.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        skipped = False
        autocast = torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.spec.bf16)
        for index in range(mine):
            lo, hi = (first + index) * per_shard, (first + index + 1) * per_shard
            last = index == mine - 1
            sync = nullcontext() if last or self.dist.world_size == 1 else self.step_losses.no_sync()  # type: ignore[operator]
            with sync:
                with autocast:
                    losses = self.step_losses(
                        source[lo:hi], driving[lo:hi], transform.shard(lo, hi), [n[lo:hi] for n in noise]
                    )
                total = sum(losses.values(), torch.zeros((), device=self.device))
                if self._any_rank(not bool(torch.isfinite(total))):
                    skipped = True
                    logger.warning(
                        "step %d: non-finite loss %s, step skipped", self.step + 1, float(total.detach())
                    )
                    break
                (total / mine).backward()
            for name, value in (*losses.items(), ("total", total)):
                sums[name] = sums.get(name, 0.0) + float(value.detach()) / mine
        if skipped:
            self.optimizer_generator.zero_grad(set_to_none=True)
            self.optimizer_kp_detector.zero_grad(set_to_none=True)
        else:
            torch.nn.utils.clip_grad_norm_(self.model.generator.parameters(), self.spec.grad_clip)
            torch.nn.utils.clip_grad_norm_(self.model.kp_detector.parameters(), self.spec.grad_clip)
            self.optimizer_generator.step()
            self.optimizer_kp_detector.step()
        self.step += 1
        if skipped:
            values = {name: float(value.detach()) for name, value in losses.items()}
            values["total"] = float(total.detach())
            return values, True
        return self._mean_over_ranks(sums), False

    def evaluate(self) -> EvaluationReport | None:
        """Held-out scores now (None when the data has no held-out clips)."""
        if not self.eval_pairs:
            return None
        return evaluate(self.model, self.eval_pairs, device=self.device, seed=self.spec.seed)

    def _loader(self) -> Iterator[FramePair] | None:
        """Batches from worker processes, from the current step on (None: draw them in this process)."""
        if not self.spec.workers:
            return None
        batches = StepBatches(
            self.sampler, batch_size=self.spec.batch_size, seed=self.spec.seed, steps=self.spec.steps
        )
        loader = torch.utils.data.DataLoader(
            batches,
            batch_size=None,
            sampler=range(self.step, self.spec.steps),
            num_workers=self.spec.workers,
            prefetch_factor=2,
        )
        return (FramePair(source=source, driving=driving) for source, driving in loader)

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
        main = self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        history_path = self.run_dir / "history.jsonl"
        history: list[dict[str, Any]] = []
        report: EvaluationReport | None = None
        last_sha = ""
        best: Path | None = self.run_dir / BEST if (self.run_dir / BEST).is_file() else None
        recent: deque[float] = deque(maxlen=20)  # seconds of the last steps, for throughput and ETA
        if self.step >= self.spec.steps:
            logger.info("run already at step %d of %d: nothing to train", self.step, self.spec.steps)
        loader = self._loader()
        while self.step < self.spec.steps:
            started = time.perf_counter()
            values, skipped = self.train_step(None if loader is None else next(loader))
            entry: dict[str, Any] = {"step": self.step, "losses": values, "skipped": skipped}
            recent.append(time.perf_counter() - started)
            rate = self.spec.batch_size * len(recent) / sum(recent) if sum(recent) > 0 else 0.0
            eta = (self.spec.steps - self.step) * self.spec.batch_size / rate if rate > 0 else None
            if progress is not None and main:
                progress(StepReport(self.step, self.spec.steps, values, skipped, recent[-1], rate, eta))
            # Every rank takes the same stop decision (rank 0's clock), or one would wait for the others forever.
            out_of_time = self._any_rank(main and deadline is not None and time.monotonic() >= deadline)
            final = self.step == self.spec.steps or out_of_time
            if out_of_time and self.step < self.spec.steps and main:
                logger.warning(
                    "time budget spent at step %d of %d: stopping early", self.step, self.spec.steps
                )
            if main and ((self.spec.eval_every and self.step % self.spec.eval_every == 0) or final):
                report = self.evaluate()
                if report is not None:
                    entry["heldout"] = report.as_dict()
                    logger.info(
                        "step %d held-out L1 %.4f PSNR %.2f dB (copy-source L1 %.4f PSNR %.2f dB)",
                        self.step,
                        report.model.l1,
                        report.model.psnr,
                        report.copy_source.l1,
                        report.copy_source.psnr,
                    )
                    if report.model.l1 < self.best_l1:
                        self.best_l1 = report.model.l1
                        best = self.run_dir / BEST
                        self._save(BEST)
            if main and (self.step % self.spec.checkpoint_every == 0 or final):
                last_sha = self._save(LAST)
            history.append(entry)
            if main:
                with history_path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(entry) + "\n")
                if self.step % 10 == 0 or final:
                    logger.info(
                        "step %d/%d loss %.4f, %.1f pairs/s, ETA %s",
                        self.step,
                        self.spec.steps,
                        values["total"],
                        rate,
                        "-" if eta is None else f"{eta / 60:.1f} min",
                    )
            if out_of_time:
                break
        if self.dist.world_size > 1:
            dist.barrier()  # the others wait for rank 0's last checkpoint before they return
        if not last_sha and main:  # nothing trained in this call (already at `steps`)
            last_sha = (
                sha256_file(self.run_dir / LAST) if (self.run_dir / LAST).is_file() else self._save(LAST)
            )
        return TrainingResult(
            steps=self.step,
            last_checkpoint=self.run_dir / LAST,
            last_sha256=last_sha,
            best_checkpoint=best,
            reconstruction_loss=self.reconstruction.kind,
            evaluation=report,
            history=history,
        )
