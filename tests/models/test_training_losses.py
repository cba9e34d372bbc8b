"""Training losses and metrics: equivariance vanishes for the identity warp, the L1 fallback says so, VGG19
weights load only from a complete local file, and the metrics agree with scikit-image."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from models.config import tiny
from models.mcnet import MCNet
from models.training import metrics
from models.training.errors import TrainingError
from models.training.losses import (
    LossWeights,
    ReconstructionLoss,
    equivariance_losses,
    feature_consistency_loss,
)
from models.training.transforms import RandomTransform, TransformParams
from models.training.vgg import VGG19Features, load_vgg19

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model() -> MCNet:
    torch.manual_seed(0)
    net = MCNet(tiny())
    with torch.no_grad():  # non-identity Jacobians, so the Jacobian term is really exercised
        net.kp_detector.jacobian.weight.normal_(0, 0.05)
    return net.train()


def _frames(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(
        torch.rand(2, 3, 8, 8, generator=generator), size=64, mode="bilinear"
    )
    return smooth.clamp(0, 1)


def test_equivariance_is_zero_for_the_identity_warp(model: MCNet) -> None:
    driving = _frames()
    identity = RandomTransform(2, TransformParams(0.0, 0.0, 5), generator=torch.Generator(), device=CPU)
    kp = model.kp_detector(driving)
    value, jacobian = equivariance_losses(model.kp_detector, driving, kp, identity)
    assert jacobian is not None
    assert float(value.detach()) < 1e-5 and float(jacobian.detach()) < 1e-5


def test_equivariance_is_positive_and_trains_the_detector_for_a_random_warp(model: MCNet) -> None:
    driving = _frames(1)
    warp = RandomTransform(2, TransformParams(), generator=torch.Generator().manual_seed(0), device=CPU)
    model.zero_grad()
    kp = model.kp_detector(driving)
    value, jacobian = equivariance_losses(model.kp_detector, driving, kp, warp)
    assert jacobian is not None and float(value.detach()) > 1e-4 and float(jacobian.detach()) > 1e-4
    (value + jacobian).backward()
    assert float(model.kp_detector.kp.weight.grad.abs().sum()) > 0
    assert float(model.kp_detector.jacobian.weight.grad.abs().sum()) > 0


def test_warp_jacobian_of_an_affine_warp_is_its_matrix() -> None:
    warp = RandomTransform(
        3, TransformParams(0.1, 0.0, 5), generator=torch.Generator().manual_seed(1), device=CPU
    )
    points = torch.rand(3, 7, 2) * 2 - 1
    jacobian = warp.jacobian(points)
    assert torch.allclose(jacobian, warp.theta[:, :, :, :2].expand(3, 7, 2, 2), atol=1e-6)


def test_without_vgg_weights_the_loss_is_multiscale_l1_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="models.training.losses"):
        loss = ReconstructionLoss((1.0, 0.5), LossWeights(l1=2.0), vgg=None)
    assert loss.kind == "l1"
    assert "no VGG19 weights given: the perceptual loss falls back to a multi-scale L1 loss" in caplog.text
    a, b = _frames(2), _frames(3)
    expected = 2.0 * (a - b).abs().mean() + 2.0 * (loss.pyramid(a)[1] - loss.pyramid(b)[1]).abs().mean()
    assert torch.allclose(loss(a, b), expected)
    assert float(loss(a, a)) == 0.0


def test_vgg_weights_load_from_a_local_torchvision_state_dict(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch.manual_seed(0)
    state = {key: value.clone() for key, value in VGG19Features().state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # torchvision files carry the classifier too
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    vgg = load_vgg19(path, device=CPU)
    with caplog.at_level(logging.WARNING, logger="models.training.losses"):
        loss = ReconstructionLoss((1.0,), LossWeights(), vgg=vgg)
    assert loss.kind == "perceptual" and "falls back" not in caplog.text
    image = torch.rand(1, 3, 32, 32)
    taps = vgg(image)
    assert [t.shape[1] for t in taps] == [64, 128, 256, 512, 512]
    assert float(loss(image, image)) == 0.0 and float(loss(image, image.flip(-1))) > 0

    del state["features.28.bias"]
    torch.save(state, path)
    with pytest.raises(TrainingError, match="key `features.28.bias` is missing or has the wrong shape"):
        load_vgg19(path, device=CPU)
    with pytest.raises(TrainingError, match="does not exist"):
        load_vgg19(tmp_path / "absent.pth", device=CPU)


def test_feature_consistency_trains_the_memory_not_the_features(model: MCNet) -> None:
    source, driving = _frames(4), _frames(5)
    model.zero_grad()
    kp_s, kp_d = model.kp_detector(source), model.kp_detector(driving)
    output = model.generator(source, kp_driving=kp_d, kp_source=kp_s, rng=torch.Generator().manual_seed(0))
    # The features are targets only: swap in leaf copies and check no gradient reaches them.
    features = tuple(f.detach().clone().requires_grad_(True) for f in output.memory_features)
    loss = feature_consistency_loss(dataclasses.replace(output, memory_features=features))
    assert len(output.memory_values) == tiny().gen_num_down_blocks and float(loss.detach()) > 0
    loss.backward()
    assert float(model.generator.mbUnit.mb.grad.abs().sum()) > 0  # the memory bank learns from it
    assert all(f.grad is None for f in features)


def test_metrics_agree_with_scikit_image() -> None:
    a, b = _frames(6), (_frames(6) + 0.05 * torch.randn(2, 3, 64, 64)).clamp(0, 1)
    for i in range(2):
        x, y = a[i].permute(1, 2, 0).double().numpy(), b[i].permute(1, 2, 0).double().numpy()
        ours_ssim = float(metrics.ssim(a, b)[i])
        assert ours_ssim == pytest.approx(
            structural_similarity(x, y, channel_axis=2, data_range=1.0), abs=1e-4
        )
        assert float(metrics.psnr(a, b)[i]) == pytest.approx(
            peak_signal_noise_ratio(y, x, data_range=1.0), abs=1e-3
        )
    assert torch.allclose(metrics.l1(a, b), (a - b).abs().mean(dim=(1, 2, 3)))
    assert torch.allclose(metrics.ssim(a, a), torch.ones(2), atol=1e-6)
    with pytest.raises(ValueError, match="must both be"):
        metrics.l1(a, b[:, :2])
