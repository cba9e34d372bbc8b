"""The trainer on a tiny 64x64 MCNet and real frames: the loss goes down, checkpoints load for inference,
resume continues exactly, and wrong starts are refused with one line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from models.config import tiny
from models.loading import load_mcnet
from models.training.dataset import PairSampler
from models.training.errors import TrainingError
from models.training.trainer import LAST, Trainer, TrainingSpec
from tests.models.conftest import prepared_clip

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepared_clip(tmp_path_factory, "clips", max_frames=60)


def _fixed_batch_loss(trainer: Trainer, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Reconstruction loss on a fixed batch with fixed noise, without touching the run's random state."""
    noise, trainer.noise_rng = trainer.noise_rng, torch.Generator().manual_seed(0)
    warp, trainer.warp_rng = trainer.warp_rng, torch.Generator().manual_seed(0)
    try:
        with torch.no_grad():
            return float(trainer._losses(*batch)["reconstruction"])
    finally:
        trainer.noise_rng, trainer.warp_rng = noise, warp


def test_a_few_dozen_steps_lower_the_loss(data: Path, tmp_path: Path) -> None:
    spec = TrainingSpec(steps=36, batch_size=4, lr=1e-3, checkpoint_every=100, seed=0)
    trainer = Trainer(tiny(), spec, data_root=data, run_dir=tmp_path / "run", device=CPU)
    pair = PairSampler(trainer.manifest, image_size=64, seed=99).sample(4)
    batch = (pair.source, pair.driving)
    before = _fixed_batch_loss(trainer, batch)
    result = trainer.run()
    after = _fixed_batch_loss(trainer, batch)
    assert result.steps == 36 and result.reconstruction_loss == "l1"
    assert after < 0.8 * before, (before, after)
    first = sum(e["losses"]["total"] for e in result.history[:6]) / 6
    last = sum(e["losses"]["total"] for e in result.history[-6:]) / 6
    assert last < first
    # The final checkpoint is the authors' format plus our config, and loads for inference.
    loaded = load_mcnet(result.last_checkpoint, expected_sha256=result.last_sha256)
    assert loaded.config == tiny() and loaded.extra["epoch"] == 36
    assert set(loaded.extra) >= {"optimizer_generator", "optimizer_kp_detector", "training"}
    report = result.evaluation
    assert report is not None and report.frames == 11  # 12 held-out frames: first is the source
    assert report.copy_source.l1 > 0 and 0 < report.model.ssim <= 1


def test_resume_continues_exactly_where_the_checkpoint_left(data: Path, tmp_path: Path) -> None:
    spec = TrainingSpec(steps=4, batch_size=2, checkpoint_every=2, seed=5)
    straight = Trainer(tiny(), spec, data_root=data, run_dir=tmp_path / "a", device=CPU)
    straight.run()

    half = dataclasses.replace(spec, steps=2)
    Trainer(tiny(), half, data_root=data, run_dir=tmp_path / "b", device=CPU).run()
    resumed = Trainer(tiny(), spec, data_root=data, run_dir=tmp_path / "b", device=CPU, resume=True)
    assert resumed.step == 2
    result = resumed.run()
    assert result.steps == 4
    ours, theirs = resumed.model.state_dict(), straight.model.state_dict()
    for key, value in theirs.items():
        assert torch.allclose(ours[key].float(), value.float(), atol=1e-6), key


def test_an_existing_run_is_not_overwritten_without_resume(data: Path, tmp_path: Path) -> None:
    spec = TrainingSpec(steps=2, batch_size=2, seed=0)
    Trainer(tiny(), spec, data_root=data, run_dir=tmp_path / "run", device=CPU).run()
    before = (tmp_path / "run" / LAST).read_bytes()
    with pytest.raises(TrainingError, match=r"last\.pth\.tar exists: pass resume"):
        Trainer(tiny(), spec, data_root=data, run_dir=tmp_path / "run", device=CPU)
    other = dataclasses.replace(tiny(), num_kp=4)
    with pytest.raises(TrainingError, match="trained with another architecture"):
        Trainer(other, spec, data_root=data, run_dir=tmp_path / "run", device=CPU, resume=True)
    assert (tmp_path / "run" / LAST).read_bytes() == before


def test_bad_settings_are_refused() -> None:
    with pytest.raises(TrainingError, match="`batch_size` must be >= 2"):
        TrainingSpec(steps=1, batch_size=1)
    with pytest.raises(TrainingError, match="`steps` and `batch_size` must be >= 1"):
        TrainingSpec(steps=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_cuda(data: Path, tmp_path: Path) -> None:
    spec = TrainingSpec(steps=2, batch_size=2, seed=0)
    trainer = Trainer(tiny(), spec, data_root=data, run_dir=tmp_path / "run", device=torch.device("cuda"))
    result = trainer.run()
    assert result.steps == 2 and all(
        torch.isfinite(torch.tensor(e["losses"]["total"])) for e in result.history
    )
    assert next(trainer.model.parameters()).is_cuda
    assert load_mcnet(result.last_checkpoint).config == tiny()
