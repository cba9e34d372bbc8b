"""Every parameter and buffer of the vox-256 networks matches the authors' state dict (names, shapes, dtypes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.config import tiny, vox256
from models.mcnet import MCNet

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "mcnet"
LAYOUT = SHARED / "mcnet_vox256_state_dict.json"


@pytest.fixture(scope="module")
def layout() -> dict:
    if not LAYOUT.is_file():
        pytest.skip(f"reference layout not found at {LAYOUT}")
    return json.loads(LAYOUT.read_text())


@pytest.fixture(scope="module")
def vox_meta() -> MCNet:
    # The meta device builds the 102 M-parameter networks without allocating or initialising them.
    with torch.device("meta"):
        return MCNet(vox256())


@pytest.mark.parametrize(("network", "count"), [("kp_detector", 75), ("generator", 247)])
def test_state_dict_matches_reference_layout(layout: dict, vox_meta: MCNet, network: str, count: int) -> None:
    ours = getattr(vox_meta, network).state_dict()
    reference = layout["networks"][network]["state_dict"]
    assert len(reference) == count
    assert list(ours) == [entry["key"] for entry in reference]
    for entry in reference:
        tensor = ours[entry["key"]]
        assert list(tensor.shape) == entry["shape"], entry["key"]
        assert str(tensor.dtype).removeprefix("torch.") == entry["dtype"], entry["key"]


@pytest.mark.parametrize("network", ["kp_detector", "generator"])
def test_parameter_counts_match_reference(layout: dict, vox_meta: MCNet, network: str) -> None:
    module = getattr(vox_meta, network)
    assert sum(p.numel() for p in module.parameters()) == layout["networks"][network]["num_parameters"]
    assert sum(b.numel() for b in module.buffers()) == layout["networks"][network]["num_buffer_elements"]


def test_total_inference_parameters(layout: dict, vox_meta: MCNet) -> None:
    assert (
        sum(p.numel() for p in vox_meta.parameters()) == layout["total_parameters_inference"] == 101_841_273
    )


def test_antialias_kernel_is_the_13x13_gaussian() -> None:
    from models.blocks import AntiAliasInterpolation2d

    down = AntiAliasInterpolation2d(3, 0.25)
    assert down.weight.shape == (3, 1, 13, 13)
    assert torch.allclose(down.weight.sum(dim=(2, 3)), torch.ones(3, 1))
    centre = down.weight[0, 0, 6]
    assert centre.argmax().item() == 6 and torch.allclose(centre, centre.flip(0))
    x = torch.rand(2, 3, 256, 256)
    assert down(x).shape == (2, 3, 64, 64)


def test_vox256_derived_sizes() -> None:
    config = vox256()
    assert config.keypoint_grid_size == 58
    assert config.motion_size == 64
    assert config.encoder_channels == (64, 128, 256, 512)
    assert config.memory_widths == (32, 64, 128)


def test_tiny_forward_shapes() -> None:
    config = tiny()
    torch.manual_seed(0)
    model = MCNet(config).eval()
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        kp = model.kp_detector(image)
        out = model.generator(image, kp, kp, rng=torch.Generator().manual_seed(0))
    assert kp.value.shape == (2, 5, 2) and kp.jacobian is not None and kp.jacobian.shape == (2, 5, 2, 2)
    assert out.prediction.shape == (2, 3, 64, 64)
    assert out.deformed.shape == (2, 3, 64, 64)
    assert out.occlusion_map.shape == (2, 1, 32, 32)
    assert out.deformation.shape == (2, 32, 32, 2)
    assert out.mask.shape == (2, 6, 32, 32)
    assert out.sparse_deformed.shape == (2, 6, 3, 32, 32)
    assert [f.shape[1:] for f in out.warped_features] == [(64, 8, 8), (32, 16, 16), (16, 32, 32), (8, 64, 64)]
    assert [f.shape[1:] for f in out.memory_features] == [(32, 8, 8), (32, 16, 16), (32, 32, 32)]
    assert all(v.shape[1:] == (32, 8, 8) for v in out.memory_values)
    assert float(out.prediction.min()) >= 0 and float(out.prediction.max()) <= 1
    assert float(out.occlusion_map.min()) > 0 and float(out.occlusion_map.max()) < 1


def test_memory_leaves_even_channels_untouched() -> None:
    """The interleaved split: channel 2j passes through, 2j+1 is compensated."""
    config = tiny()
    torch.manual_seed(0)
    model = MCNet(config).eval()
    feature = torch.rand(1, 64, 8, 8)
    kp = torch.rand(1, 5, 2)
    with torch.no_grad():
        out = model.generator.mbUnit(feature, kp, torch.zeros(1, 1, 8, 8)).output
    assert torch.equal(out[:, 0::2], feature[:, 0::2])
    assert not torch.allclose(out[:, 1::2], feature[:, 1::2])
