"""The error family of the media stages: who caused a failure decides whether a flow may retry it."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error raised by `pipeline/`; the message is one line that names the cause."""


class InputError(PipelineError, ValueError):
    """The input itself is unacceptable (no face, corrupt file, wrong codec...). Never retried."""


class TransientError(PipelineError):
    """A dependency was unavailable (storage down, timeout). Flows retry these and only these."""


class PermanentError(PipelineError):
    """A configuration or permission problem (wrong credentials, missing bucket). Never retried."""
