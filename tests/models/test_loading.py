"""Checkpoint loading is strict and safe: every refusal names its cause; the authors' format is accepted."""

from __future__ import annotations

import dataclasses
import fractions
import shutil
from pathlib import Path

import pytest
import torch

from models.config import MCNetConfig
from models.digest import sha256_file
from models.errors import CheckpointError
from models.loading import load_mcnet, save_checkpoint, sidecar_config_path
from tests.fixtures.model import TinyCheckpoint


def _authors_format(checkpoint: TinyCheckpoint, *, prefix: str = "") -> dict:
    data = torch.load(checkpoint.path, weights_only=True)
    return {
        "generator": {prefix + k: v for k, v in data["generator"].items()},
        "kp_detector": {prefix + k: v for k, v in data["kp_detector"].items()},
    }


def test_round_trip_restores_every_tensor(tiny_checkpoint: TinyCheckpoint) -> None:
    loaded = load_mcnet(tiny_checkpoint.path, expected_sha256=tiny_checkpoint.sha256)
    saved = torch.load(tiny_checkpoint.path, weights_only=True)
    assert loaded.config == tiny_checkpoint.config
    assert loaded.sha256 == tiny_checkpoint.sha256 == sha256_file(tiny_checkpoint.path)
    assert loaded.extra == {"epoch": 0}
    assert not loaded.model.training
    for name in ("generator", "kp_detector"):
        ours = getattr(loaded.model, name).state_dict()
        assert ours.keys() == saved[name].keys()
        for key, value in saved[name].items():
            assert torch.equal(ours[key], value), key


def test_authors_format_with_module_prefix_and_extra_entries(
    tiny_checkpoint: TinyCheckpoint, tmp_path: Path
) -> None:
    data = _authors_format(tiny_checkpoint, prefix="module.")
    data.update(
        {"discriminator": {"module.x": torch.zeros(1)}, "optimizer_generator": {"state": {}}, "epoch": 99}
    )
    path = tmp_path / "authors.pth.tar"
    torch.save(data, path)
    loaded = load_mcnet(path, config=tiny_checkpoint.config)
    reference = load_mcnet(tiny_checkpoint.path)
    assert loaded.extra["epoch"] == 99 and "discriminator" in loaded.extra
    for key, value in reference.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key


def test_sidecar_config_is_used_when_the_checkpoint_has_none(
    tiny_checkpoint: TinyCheckpoint, tmp_path: Path
) -> None:
    path = tmp_path / "plain.pth.tar"
    torch.save(_authors_format(tiny_checkpoint), path)
    shutil.copy(sidecar_config_path(tiny_checkpoint.path), sidecar_config_path(path))
    assert load_mcnet(path).config == tiny_checkpoint.config


def test_without_any_config_the_released_architecture_is_assumed(
    tiny_checkpoint: TinyCheckpoint, tmp_path: Path
) -> None:
    path = tmp_path / "noconfig.pth.tar"
    torch.save(_authors_format(tiny_checkpoint), path)
    # Tiny weights do not fit vox-256: the refusal names the first offending key.
    with pytest.raises(
        CheckpointError,
        match=r"`kp_detector` key `predictor.encoder.down_blocks.0.conv.weight` has shape \(16, 3, 3, 3\), expected \(64, 3, 3, 3\)",
    ):
        load_mcnet(path)


def test_sha256_mismatch_is_refused(tiny_checkpoint: TinyCheckpoint) -> None:
    with pytest.raises(
        CheckpointError, match=f"sha256 mismatch: expected {'0' * 64}, got {tiny_checkpoint.sha256}"
    ):
        load_mcnet(tiny_checkpoint.path, expected_sha256="0" * 64)


def test_sha256_is_case_insensitive(tiny_checkpoint: TinyCheckpoint) -> None:
    assert (
        load_mcnet(tiny_checkpoint.path, expected_sha256=tiny_checkpoint.sha256.upper()).sha256
        == tiny_checkpoint.sha256
    )


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_mcnet(tmp_path / "absent.pth")


def test_truncated_file_is_refused(tiny_checkpoint: TinyCheckpoint, tmp_path: Path) -> None:
    path = tmp_path / "truncated.pth.tar"
    path.write_bytes(tiny_checkpoint.path.read_bytes()[: tiny_checkpoint.path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_mcnet(path)


def test_non_checkpoint_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_mcnet(path)


def test_pickle_with_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"generator": {}, "kp_detector": {}, "hook": fractions.Fraction(1, 3)}, path)
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_mcnet(path)


def test_torch_file_without_the_networks_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="needs `generator` and `kp_detector` entries"):
        load_mcnet(path)


def test_another_architecture_is_refused(tiny_checkpoint: TinyCheckpoint, tmp_path: Path) -> None:
    """A FOMM-style generator (no memory unit) is refused with the first missing key."""
    data = _authors_format(tiny_checkpoint)
    data["generator"] = {k: v for k, v in data["generator"].items() if not k.startswith("mbUnit.")}
    path = tmp_path / "fomm.pth"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="`generator` is missing key `mbUnit.mb`"):
        load_mcnet(path, config=tiny_checkpoint.config)


def test_other_config_is_refused(tiny_checkpoint: TinyCheckpoint) -> None:
    other = dataclasses.replace(tiny_checkpoint.config, num_kp=6)
    with pytest.raises(CheckpointError, match="`kp_detector` key `kp.weight` has shape"):
        load_mcnet(tiny_checkpoint.path, config=other)


def test_unexpected_key_is_refused(tiny_checkpoint: TinyCheckpoint, tmp_path: Path) -> None:
    data = _authors_format(tiny_checkpoint)
    data["kp_detector"]["extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "unexpected.pth"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="`kp_detector` has unexpected key `extra_head.weight`"):
        load_mcnet(path, config=tiny_checkpoint.config)


def test_wrong_shape_is_refused(tiny_checkpoint: TinyCheckpoint, tmp_path: Path) -> None:
    data = _authors_format(tiny_checkpoint)
    data["generator"]["final.bias"] = torch.zeros(4)
    path = tmp_path / "shape.pth"
    torch.save(data, path)
    with pytest.raises(
        CheckpointError, match=r"`generator` key `final.bias` has shape \(4,\), expected \(3,\)"
    ):
        load_mcnet(path, config=tiny_checkpoint.config)


def test_wrong_integer_buffer_dtype_is_refused(tiny_checkpoint: TinyCheckpoint, tmp_path: Path) -> None:
    data = _authors_format(tiny_checkpoint)
    data["generator"]["first.norm.num_batches_tracked"] = torch.zeros((), dtype=torch.float32)
    path = tmp_path / "dtype.pth"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="`first.norm.num_batches_tracked` has dtype torch.float32"):
        load_mcnet(path, config=tiny_checkpoint.config)


def test_non_finite_weights_are_refused(tiny_checkpoint: TinyCheckpoint, tmp_path: Path) -> None:
    data = _authors_format(tiny_checkpoint)
    data["generator"]["final.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.pth"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="`final.weight` holds NaN or inf"):
        load_mcnet(path, config=tiny_checkpoint.config)


def test_invalid_stored_config_is_refused(tiny_checkpoint: TinyCheckpoint, tmp_path: Path) -> None:
    data = _authors_format(tiny_checkpoint)
    data["config"] = tiny_checkpoint.config.to_json().replace('"num_kp"', '"num_keypoints"')
    path = tmp_path / "badconfig.pth"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="stored config is invalid: unknown config key `num_keypoints`"):
        load_mcnet(path)


def test_half_precision_checkpoint_is_upcast(tiny_checkpoint: TinyCheckpoint, tmp_path: Path) -> None:
    data = _authors_format(tiny_checkpoint)
    for network in ("generator", "kp_detector"):
        data[network] = {k: v.half() if v.is_floating_point() else v for k, v in data[network].items()}
    path = tmp_path / "half.pth"
    torch.save(data, path)
    loaded = load_mcnet(path, config=tiny_checkpoint.config)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())


def test_save_refuses_reserved_extra_keys_and_leaves_nothing(
    tiny_checkpoint: TinyCheckpoint, tmp_path: Path
) -> None:
    model = load_mcnet(tiny_checkpoint.path).model
    target = tmp_path / "out" / "model.pth.tar"
    with pytest.raises(CheckpointError, match="reserved checkpoint key `generator`"):
        save_checkpoint(
            target,
            config=model.config,
            generator=model.generator,
            kp_detector=model.kp_detector,
            extra={"generator": {}},
        )
    assert not target.exists() and not sidecar_config_path(target).exists()


def test_save_writes_config_inside_and_beside(tiny_checkpoint: TinyCheckpoint, tmp_path: Path) -> None:
    model = load_mcnet(tiny_checkpoint.path).model
    target = tmp_path / "model.pth.tar"
    sha = save_checkpoint(
        target, config=model.config, generator=model.generator, kp_detector=model.kp_detector
    )
    assert sha == sha256_file(target)
    assert MCNetConfig.from_json(torch.load(target, weights_only=True)["config"]) == model.config
    assert MCNetConfig.from_json(sidecar_config_path(target).read_text()) == model.config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth.tar", "model.pth.tar.config.json"]
