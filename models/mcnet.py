"""The pair of networks that make one MCNet model, held together with their configuration."""

from __future__ import annotations

from torch import nn

from models.config import MCNetConfig
from models.generator import Generator
from models.keypoint_detector import KeypointDetector


class MCNet(nn.Module):
    """Keypoint detector + generator; state-dict keys are `kp_detector.*` and `generator.*`.

    The checkpoint stores the two networks' state dicts separately (the authors' format), which is why
    they are two attributes rather than one flat module.
    """

    def __init__(self, config: MCNetConfig) -> None:
        super().__init__()
        self.config = config
        self.kp_detector = KeypointDetector(config)
        self.generator = Generator(config)
