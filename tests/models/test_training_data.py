"""Training data: videos become checked clip files atomically; pairs are sampled reproducibly; bad input
fails with one line and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.training.augment import AugmentationParams, augment_pair, hsv_to_rgb, rgb_to_hsv
from models.training.clips import ClipWriter, load_clip, read_manifest
from models.training.dataset import PairSampler, evaluation_pairs
from models.training.errors import TrainingDataError
from pipeline.training.frames import TrainingFramesError, prepare_training_data

CLIP = Path(__file__).resolve().parents[2] / ".." / "shared" / "media" / "talking_man_320x240_15s.mov"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clips") / "data"
    prepare_training_data([CLIP], out, size=64, heldout_fraction=0.25, max_frames=40)
    return out


def test_video_becomes_train_and_heldout_clips(data: Path) -> None:
    manifest = read_manifest(data)
    assert manifest.image_size == 64
    (train,), (held,) = manifest.split("train"), manifest.split("heldout")
    assert (train.frames, held.frames) == (30, 10)
    assert (train.first_frame, held.first_frame) == (0, 30)
    assert train.origin == held.origin == CLIP.name
    frames = load_clip(manifest, train)
    assert frames.dtype == torch.uint8 and frames.shape == (30, 3, 64, 64)
    # Real picture content (a face on a wall), not a constant or garbage frame.
    assert 40 < float(frames.float().mean()) < 220 and float(frames.float().std()) > 20


def test_frame_folders_are_read_like_videos(tmp_path: Path) -> None:
    video = tmp_path / "vox" / "id0001"
    video.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)).save(video / f"{i:04d}.png")
    manifest = prepare_training_data([tmp_path / "vox"], tmp_path / "data", size=32, heldout_fraction=0)
    (clip,) = manifest.clips
    assert (clip.name, clip.split, clip.frames) == ("id0001", "train", 5)
    assert load_clip(manifest, clip).shape == (5, 3, 32, 32)


def test_empty_folder_is_refused_and_nothing_written(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrainingFramesError, match=r"^no videos or frame folders found in .*empty$"):
        prepare_training_data([empty], tmp_path / "out", size=32)
    assert not (tmp_path / "out").exists()


def test_unreadable_video_is_refused_and_nothing_written(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(TrainingFramesError, match=r"^cannot decode video broken\.mp4: ") as info:
        prepare_training_data([CLIP, bad], tmp_path / "out", size=32, max_frames=4)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == [bad]  # no temporary folder left either


def test_writer_refuses_wrong_frames_and_an_existing_folder(tmp_path: Path) -> None:
    with (
        pytest.raises(TrainingDataError, match="must be uint8"),
        ClipWriter(tmp_path / "a", image_size=8) as w,
    ):
        w.add("x", torch.zeros(3, 3, 8, 8), split="train", origin="x", first_frame=0)
    assert not (tmp_path / "a").exists()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    with pytest.raises(TrainingDataError, match="already exists and is not empty"):
        with ClipWriter(tmp_path / "b", image_size=8):
            pass
    assert (tmp_path / "b" / "keep.txt").read_text() == "mine"


def test_tampered_clip_is_refused(data: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    manifest = read_manifest(copy)
    clip = manifest.split("heldout")[0]
    path = copy / "clips" / f"{clip.name}.pt"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(TrainingDataError, match="does not match its sha256"):
        load_clip(manifest, clip)


def test_missing_manifest_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(
        TrainingDataError, match="has no manifest.json: prepare it with `likeness train prepare`"
    ):
        read_manifest(tmp_path)


def test_sampler_pairs_are_same_clip_ordered_and_reproducible(data: Path) -> None:
    manifest = read_manifest(data)
    sampler = PairSampler(manifest, image_size=64, augmentation=None, seed=3)
    pair = sampler.sample(6)
    assert pair.source.shape == pair.driving.shape == (6, 3, 64, 64)
    assert (
        pair.source.dtype == torch.float32 and 0 <= float(pair.source.min()) <= float(pair.source.max()) <= 1
    )
    frames = load_clip(manifest, manifest.split("train")[0]).float() / 255
    for source, driving in zip(pair.source, pair.driving, strict=True):
        i = int(((frames - source).abs().flatten(1).sum(1) == 0).nonzero()[0])
        j = int(((frames - driving).abs().flatten(1).sum(1) == 0).nonzero()[0])
        assert i < j  # two distinct frames of the training clip, in time order
    state = sampler.state_dict()
    first = sampler.sample(2)
    sampler.load_state_dict(state)
    again = sampler.sample(2)
    assert torch.equal(first.source, again.source) and torch.equal(first.driving, again.driving)


def test_sampler_refuses_frames_of_another_size(data: Path) -> None:
    with pytest.raises(TrainingDataError, match=r"64x64 frames, the model needs 128x128: .*--size 128"):
        PairSampler(read_manifest(data), image_size=128)


def test_evaluation_pairs_use_the_heldout_clip_only(data: Path) -> None:
    manifest = read_manifest(data)
    (pair,) = evaluation_pairs(manifest, per_clip=4)
    held = load_clip(manifest, manifest.split("heldout")[0]).float() / 255
    assert pair.driving.shape == (4, 3, 64, 64)
    assert torch.equal(pair.source[0], held[0]) and torch.equal(pair.driving[-1], held[-1])


def test_augmentation_is_consistent_within_a_pair() -> None:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(8, 3, 16, 16, generator=generator)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(image)), image, atol=1e-5)
    source, driving = augment_pair(image, image.clone(), AugmentationParams(), generator)
    # Same flip and colour change for both frames of a pair: identical inputs stay identical.
    assert torch.allclose(source, driving)
    assert not torch.allclose(source, image)
    assert 0 <= float(source.min()) and float(source.max()) <= 1
    no_change = AugmentationParams(0, 0, 0, 0, 0, 0)
    same, _ = augment_pair(image, image, no_change, generator)
    assert torch.allclose(same, image, atol=1e-5)
