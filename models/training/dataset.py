"""Sampling (source, driving) training pairs from prepared clips, and fixed pairs for evaluation.

A training pair is two frames of the same clip (the authors' same-identity reconstruction task): a clip
is drawn uniformly (one identity per draw, like their `id_sampling`), then two distinct frames in time
order. Clips are small (uint8, a few MB each), so they are all held in memory once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from models.training.augment import AugmentationParams, augment_pair
from models.training.clips import ClipManifest, load_clip
from models.training.errors import TrainingDataError


@dataclass(frozen=True)
class FramePair:
    """A batch of pairs: (B, 3, S, S) float32 in [0, 1] each."""

    source: Tensor
    driving: Tensor


def _to_float(frames: Tensor) -> Tensor:
    return frames.to(torch.float32) / 255.0


class PairSampler:
    """Draws random training pairs from the clips of one split.

    Args:
        manifest: the prepared data folder.
        split: which clips to draw from ("train" normally).
        image_size: the model's input size; must equal the data's frame size.
        augmentation: flips and colour jitter, or None for plain pairs.
        seed: seeds the sampler's own generator (its state is checkpointed for resume).
    """

    def __init__(
        self,
        manifest: ClipManifest,
        *,
        split: str = "train",
        image_size: int,
        augmentation: AugmentationParams | None = None,
        seed: int = 0,
    ) -> None:
        if manifest.image_size != image_size:
            raise TrainingDataError(
                f"training data in {manifest.root} has {manifest.image_size}x{manifest.image_size} frames, "
                f"the model needs {image_size}x{image_size}: prepare the data again with --size {image_size}"
            )
        clips = manifest.split(split)
        if not clips:
            raise TrainingDataError(f"training data in {manifest.root} has no `{split}` clips")
        self.clips = [load_clip(manifest, clip) for clip in clips]
        self.augmentation = augmentation
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, batch_size: int) -> FramePair:
        """Draw `batch_size` pairs (with replacement across clips)."""
        sources, drivings = [], []
        for _ in range(batch_size):
            clip = self.clips[int(torch.randint(len(self.clips), (1,), generator=self.generator))]
            first, second = torch.randperm(clip.shape[0], generator=self.generator)[:2].sort().values.tolist()
            sources.append(clip[first])
            drivings.append(clip[second])
        source, driving = _to_float(torch.stack(sources)), _to_float(torch.stack(drivings))
        if self.augmentation is not None:
            source, driving = augment_pair(source, driving, self.augmentation, self.generator)
        return FramePair(source=source, driving=driving)

    def sample_at(self, step: int, batch_size: int, *, seed: int) -> FramePair:
        """The pairs of step `step`, drawn from a generator seeded by (seed, step) alone: any process can
        draw any step's batch (worker processes, resumed runs) and gets the same pairs."""
        saved = self.generator
        self.generator = torch.Generator().manual_seed((seed * 1_000_003 + step) % (2**63))
        try:
            return self.sample(batch_size)
        finally:
            self.generator = saved

    def state_dict(self) -> dict[str, Tensor]:
        """The random state, so a resumed run continues the same sequence of pairs."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore what `state_dict` returned."""
        self.generator.set_state(state["generator"])


def evaluation_pairs(
    manifest: ClipManifest, *, split: str = "heldout", per_clip: int = 16
) -> list[FramePair]:
    """Fixed, deterministic evaluation pairs: per clip, its first frame as source against evenly spaced
    later frames as driving (the authors' same-identity reconstruction protocol).

    Returns:
        One `FramePair` per clip, source repeated to the number of driving frames.
    """
    clips = manifest.split(split)
    if not clips:
        raise TrainingDataError(f"training data in {manifest.root} has no `{split}` clips to evaluate on")
    pairs = []
    for info in clips:
        frames = load_clip(manifest, info)
        count = min(per_clip, frames.shape[0] - 1)
        index = torch.linspace(1, frames.shape[0] - 1, count).round().long()
        driving = _to_float(frames[index])
        source = _to_float(frames[:1]).expand_as(driving).contiguous()
        pairs.append(FramePair(source=source, driving=driving))
    return pairs


def cross_identity_pairs(
    manifest: ClipManifest, *, split: str = "heldout", per_clip: int = 8
) -> list[FramePair]:
    """The portrait of one clip driven by another's frames: clip i's first frame as source against evenly
    spaced frames of clip i+1 (cyclically). Empty with fewer than two clips of `split`."""
    clips = manifest.split(split)
    if len(clips) < 2:
        return []
    frames = [load_clip(manifest, info) for info in clips]
    pairs = []
    for index, own in enumerate(frames):
        driver = frames[(index + 1) % len(frames)]
        count = min(per_clip, driver.shape[0])
        chosen = torch.linspace(0, driver.shape[0] - 1, count).round().long()
        driving = _to_float(driver[chosen])
        pairs.append(FramePair(source=_to_float(own[:1]).expand_as(driving).contiguous(), driving=driving))
    return pairs


class StepBatches(torch.utils.data.Dataset[tuple[Tensor, Tensor]]):
    """Map-style view of a run's batches, indexed by step, for a `DataLoader` with worker processes.

    Item `step` is the global batch of that step (`PairSampler.sample_at`), as (source, driving).
    """

    def __init__(self, sampler: PairSampler, *, batch_size: int, seed: int, steps: int) -> None:
        self.sampler, self.batch_size, self.seed, self.steps = sampler, batch_size, seed, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[Tensor, Tensor]:
        pair = self.sampler.sample_at(step, self.batch_size, seed=self.seed)
        return pair.source, pair.driving
