"""VGG19 feature extractor for the perceptual loss, loaded from a local weights file (never downloaded).

The layer layout mirrors torchvision's `vgg19().features` so its ImageNet state dict
(`features.<i>.weight`/`.bias`) loads as is; only the layers up to relu5_1 are built.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from models.training.errors import TrainingError

# torchvision's VGG19 "E" configuration up to conv5_1: channels, or "M" for a 2x2 max pool.
_LAYOUT: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
)
# Indices (in `features`) of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
TAPS = (1, 6, 11, 20, 29)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """Frozen VGG19 returning the five relu_1 activations of an image in [0, 1].

    State-dict keys: `features.{0,2,5,...,28}.weight/bias` (torchvision's names).
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def forward(self, image: Tensor) -> list[Tensor]:
        """(B, 3, H, W) in [0, 1] -> the five activations relu1_1 ... relu5_1."""
        x = (image - self.mean) / self.std
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in TAPS:
                taps.append(x)
            if index == TAPS[-1]:
                break
        return taps


def load_vgg19(path: Path, *, device: torch.device) -> VGG19Features:
    """Build `VGG19Features` from a local torchvision-format state dict (`classifier.*` keys are ignored).

    Raises:
        TrainingError: the file is missing, unreadable, or lacks/misshapes a needed key.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"VGG19 weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise TrainingError(f"VGG19 weights file {path} is unreadable: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise TrainingError(f"VGG19 weights file {path} does not hold a state dict")
    model = VGG19Features()
    own = model.state_dict()
    wanted = {}
    for key, tensor in own.items():
        found = state.get(key)
        if not isinstance(found, Tensor) or found.shape != tensor.shape:
            raise TrainingError(f"VGG19 weights file {path}: key `{key}` is missing or has the wrong shape")
        wanted[key] = found
    model.load_state_dict(wanted, strict=True)
    return model.to(device).eval()
