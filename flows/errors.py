"""The failures a person at the CLI or the console should see as one line, not as a traceback."""

from __future__ import annotations

from flows.batchfile import BatchFileError
from flows.runtime import RuntimeConfigError
from flows.submission import SubmissionError
from governance.errors import GovernanceError
from pipeline.errors import PipelineError

# Expected, explained failures: bad files, refusals, unreachable services, configuration mistakes.
USER_FACING: tuple[type[BaseException], ...] = (
    BatchFileError,
    SubmissionError,
    RuntimeConfigError,
    GovernanceError,
    PipelineError,
    ValueError,
    OSError,
)
