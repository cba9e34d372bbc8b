"""The error family of `models/`: one base class, so callers can tell a model failure from anything else."""

from __future__ import annotations


class ModelError(Exception):
    """Base of every error raised by `models/`; the message is one line that names the cause."""


class ConfigError(ModelError, ValueError):
    """An `MCNetConfig` (or its JSON) is invalid: unknown or missing key, wrong type, inconsistent sizes."""


class CheckpointError(ModelError, ValueError):
    """A checkpoint cannot be used: unreadable, truncated, wrong sha256, or another architecture."""


class InputShapeError(ModelError, ValueError):
    """An input tensor has the wrong rank, size, channel count or dtype for the configured network."""


class InputValueError(ModelError, ValueError):
    """An input tensor has acceptable shape but unusable content (NaN/inf, out of range, empty sequence)."""
