"""The failures a person at the CLI or the console should see as one line, not as a traceback."""

from __future__ import annotations

from flows.batch.batchfile import BatchFileError
from flows.batch.submission import SubmissionError
from flows.runtime.root import RuntimeConfigError
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
