"""DistributedDataParallel on this CPU: two gloo processes started by torchrun train the same model as one
process with the same global batch (same shards), up to float summation order; rank 0 alone writes."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from flows.training import train_model
from models.config import tiny
from models.loading import load_mcnet
from models.training.dataset import PairSampler
from models.training.errors import TrainingError
from models.training.trainer import Trainer, TrainingSpec
from tests.models.conftest import prepared_clip

STEPS = 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepared_clip(tmp_path_factory, "ddp-clips", max_frames=40)


def _probe(data: Path, run_dir: Path, spec: TrainingSpec) -> float:
    """The training loss of a run's final weights on a fixed batch with fixed warps and noise.

    This, not a weight-by-weight comparison, is what must agree: a conv bias right before a BatchNorm
    gets a gradient that is zero up to float noise, and Adam scales that noise up to a step of `lr`,
    so such biases differ between runs that compute the same function.
    """
    trainer = Trainer(tiny(), spec, data_root=data, run_dir=run_dir, device=torch.device("cpu"), resume=True)
    trainer.noise_rng, trainer.warp_rng = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    pair = PairSampler(trainer.manifest, image_size=64, seed=99).sample(4)
    with torch.no_grad():
        return float(sum(trainer._losses(pair.source, pair.driving).values()))


def _spec() -> TrainingSpec:
    return TrainingSpec(steps=STEPS, batch_size=4, shards=2, lr=1e-3, seed=3, checkpoint_every=100)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(data: Path, tmp_path: Path) -> None:
    single = train_model([data], tmp_path / "single", config=tiny(), spec=_spec(), device="cpu", threads=1)
    ddp = train_model([data], tmp_path / "ddp", config=tiny(), spec=_spec(), device="cpu", threads=1, nproc=2)

    assert ddp.steps == single.steps == STEPS
    for one, two in zip(single.history, ddp.history, strict=True):
        assert one["step"] == two["step"] and not one["skipped"] and not two["skipped"]
        for name, value in one["losses"].items():
            assert two["losses"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), (one["step"], name)
    assert _probe(data, tmp_path / "ddp", _spec()) == pytest.approx(
        _probe(data, tmp_path / "single", _spec()), rel=1e-4
    )
    # Rank 0 alone wrote the history and the checkpoint; the run's evaluation came back from it.
    lines = (tmp_path / "ddp" / "history.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, STEPS + 1))
    assert ddp.evaluation is not None and single.evaluation is not None
    assert ddp.evaluation.frames == single.evaluation.frames
    # Different shards are a different optimisation (own BatchNorm statistics): the test can tell.
    other = train_model(
        [data],
        tmp_path / "one-shard",
        config=tiny(),
        spec=TrainingSpec(steps=STEPS, batch_size=4, shards=1, lr=1e-3, seed=3, checkpoint_every=100),
        device="cpu",
        threads=1,
    )
    assert other.history[-1]["losses"]["total"] != pytest.approx(
        single.history[-1]["losses"]["total"], rel=1e-4
    )


def test_shards_must_fit_the_batch_and_the_processes(data: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="must split into 3 shard"):
        TrainingSpec(steps=1, batch_size=4, shards=3)
    with pytest.raises(TrainingError, match="needs an initialised process group"):
        from models.training.trainer import Distributed

        Trainer(
            tiny(),
            _spec(),
            data_root=data,
            run_dir=tmp_path / "r",
            device=torch.device("cpu"),
            distributed=Distributed(rank=0, world_size=2),
        )


def test_a_bf16_autocast_step_trains_close_to_float32(data: Path, tmp_path: Path) -> None:
    spec = TrainingSpec(steps=1, batch_size=2, seed=1, checkpoint_every=100)
    plain = Trainer(tiny(), spec, data_root=data, run_dir=tmp_path / "f32", device=torch.device("cpu"))
    half = Trainer(
        tiny(),
        dataclasses.replace(spec, bf16=True),
        data_root=data,
        run_dir=tmp_path / "bf16",
        device=torch.device("cpu"),
    )
    full, _ = plain.train_step()
    low, skipped = half.train_step()
    assert not skipped and all(math.isfinite(v) for v in low.values())
    assert low["total"] == pytest.approx(full["total"], rel=0.05)
    assert low["total"] != full["total"]  # it did run in bf16


def test_worker_processes_load_the_same_batches_and_resume(data: Path, tmp_path: Path) -> None:
    cpu = torch.device("cpu")
    spec = TrainingSpec(steps=3, batch_size=2, seed=4, checkpoint_every=1, workers=2)
    straight = Trainer(tiny(), spec, data_root=data, run_dir=tmp_path / "a", device=cpu).run()
    first = Trainer(
        tiny(),
        dataclasses.replace(spec, steps=2, workers=1),
        data_root=data,
        run_dir=tmp_path / "b",
        device=cpu,
    ).run()
    resumed = Trainer(tiny(), spec, data_root=data, run_dir=tmp_path / "b", device=cpu, resume=True).run()
    split = [entry["losses"] for entry in first.history + resumed.history]
    assert split == [entry["losses"] for entry in straight.history]  # same pairs with 1 or 2 workers, resumed
    assert resumed.last_sha256 != "" and load_mcnet(resumed.last_checkpoint).extra["epoch"] == 3
    in_process = Trainer(
        tiny(), dataclasses.replace(spec, workers=0), data_root=data, run_dir=tmp_path / "c", device=cpu
    ).run()
    assert in_process.history[0]["losses"] != straight.history[0]["losses"]  # another (documented) sequence


@pytest.mark.slow
def test_two_processes_with_two_shards_each_accumulate_like_one(data: Path, tmp_path: Path) -> None:
    spec = TrainingSpec(steps=2, batch_size=8, shards=4, lr=1e-3, seed=5, checkpoint_every=100)
    single = train_model([data], tmp_path / "single", config=tiny(), spec=spec, device="cpu", threads=1)
    ddp = train_model([data], tmp_path / "ddp", config=tiny(), spec=spec, device="cpu", threads=1, nproc=2)
    for one, two in zip(single.history, ddp.history, strict=True):
        assert two["losses"]["total"] == pytest.approx(one["losses"]["total"], rel=1e-4)
    assert _probe(data, tmp_path / "ddp", spec) == pytest.approx(
        _probe(data, tmp_path / "single", spec), rel=1e-4
    )
