"""Held-out evaluation: same-identity reconstruction scored against the "copy the source frame" baseline.

For each held-out pair the model animates the source to the driving frame's (absolute) keypoints; the
baseline simply returns the source. A model that has learnt motion must beat the baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from models.mcnet import MCNet
from models.training import metrics
from models.training.dataset import FramePair


@dataclass(frozen=True)
class Scores:
    """Means over all evaluated frames (L1 on [0, 1], PSNR in dB, SSIM)."""

    l1: float
    psnr: float
    ssim: float

    def as_dict(self) -> dict[str, float]:
        return {"l1": self.l1, "psnr": self.psnr, "ssim": self.ssim}


@dataclass(frozen=True)
class EvaluationReport:
    """The model's scores and the baseline's on the same frames."""

    frames: int
    model: Scores
    copy_source: Scores

    def as_dict(self) -> dict[str, object]:
        return {
            "frames": self.frames,
            "model": self.model.as_dict(),
            "copy_source": self.copy_source.as_dict(),
        }


def _scores(values: dict[str, list[Tensor]]) -> Scores:
    return Scores(**{name: float(torch.cat(parts).mean()) for name, parts in values.items()})


@torch.no_grad()
def evaluate(
    model: MCNet,
    pairs: Sequence[FramePair],
    *,
    device: torch.device,
    batch_size: int = 8,
    seed: int = 0,
    observe: Callable[[Tensor, Tensor, Tensor], None] | None = None,
) -> EvaluationReport:
    """Score reconstruction on fixed pairs; the model's train/eval mode is restored afterwards.

    Args:
        model: the networks (any mode; evaluated in eval mode).
        pairs: from `dataset.evaluation_pairs`.
        device: where to run.
        batch_size: frames per forward pass.
        seed: seeds the memory noise so repeated evaluations agree.
        observe: called with each batch's (source, driving, prediction) on the CPU, float in [0, 1], for
            scores computed outside `models/` (identity distances, landmarks).
    """
    was_training = model.training
    model.eval()
    rng = torch.Generator().manual_seed(seed)
    ours: dict[str, list[Tensor]] = {"l1": [], "psnr": [], "ssim": []}
    base: dict[str, list[Tensor]] = {"l1": [], "psnr": [], "ssim": []}
    frames = 0
    try:
        for pair in pairs:
            for start in range(0, pair.driving.shape[0], batch_size):
                source = pair.source[start : start + batch_size].to(device)
                driving = pair.driving[start : start + batch_size].to(device)
                kp_source = model.kp_detector(source)
                kp_driving = model.kp_detector(driving)
                prediction = model.generator(
                    source, kp_driving=kp_driving, kp_source=kp_source, rng=rng
                ).prediction
                prediction = prediction.float().clamp(0, 1)
                for name, fn in (("l1", metrics.l1), ("psnr", metrics.psnr), ("ssim", metrics.ssim)):
                    ours[name].append(fn(prediction, driving).cpu())
                    base[name].append(fn(source, driving).cpu())
                if observe is not None:
                    observe(source.float().cpu(), driving.float().cpu(), prediction.cpu())
                frames += driving.shape[0]
    finally:
        model.train(was_training)
    return EvaluationReport(frames=frames, model=_scores(ours), copy_source=_scores(base))
