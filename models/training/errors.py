"""The errors of the training package, in the `models` family so callers can catch `ModelError`."""

from __future__ import annotations

from models.errors import ModelError


class TrainingDataError(ModelError, ValueError):
    """A prepared training-data folder is missing, empty, malformed or has the wrong frame size."""


class TrainingError(ModelError, ValueError):
    """A training run cannot start or resume (bad settings, checkpoint of another run, unusable weights)."""
