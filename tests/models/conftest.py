"""What the training tests share: the clip they train on, prepared once per module, and one torch thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from pipeline.training.frames import prepare_training_data
from tests.fixtures.media import TALKING_MAN

CLIP = TALKING_MAN


def prepared_clip(tmp_path_factory: pytest.TempPathFactory, name: str, *, max_frames: int) -> Path:
    """The training data folder (64x64 frames, a fifth held out) of the talking-man clip, under `name`."""
    out = tmp_path_factory.mktemp(name) / "data"
    prepare_training_data([CLIP], out, size=64, heldout_fraction=0.2, max_frames=max_frames)
    return out


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread for the test: results must not depend on scheduling, and the shared CPU stays usable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
