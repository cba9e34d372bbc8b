"""Start-up checks: the configuration a worker needs is validated once, before it claims any job.

A malformed policy or an unusable checkpoint used to surface inside the first job, as a traceback,
and consumed that job (it ended `failed`, and fixing the setting did not bring it back). Here the
policy file and the MCNet checkpoint are loaded through the runtime (so the loaded parts are kept and
nothing is read twice) before `batch run`, `nightly-batch` or `render-job` touches a job; a problem is
one `ConfigurationError` line naming the setting and the cause. The checkpoint is read with
`torch.load(weights_only=True)` (`models.loading`): a pickle carrying code is refused without running it.
"""

from __future__ import annotations

import logging

from flows.runtime.root import Runtime, RuntimeConfigError

logger = logging.getLogger(__name__)

POLICY_SETTING = "LIKENESS_POLICY_PATH"
CHECKPOINT_SETTING = "LIKENESS_MCNET_CHECKPOINT"
CHECKPOINT_SHA_SETTING = "LIKENESS_MCNET_CHECKPOINT_SHA256"


class ConfigurationError(RuntimeConfigError):
    """A setting cannot be used; the message is one line: `invalid LIKENESS_<NAME>: <cause>`."""


def check_policy(rt: Runtime) -> None:
    """Load the policy in force (kept by the runtime), or refuse naming `LIKENESS_POLICY_PATH`."""
    from governance.errors import PolicyError

    try:
        rt.policy  # noqa: B018 - building the part is the check
    except PolicyError as exc:
        raise ConfigurationError(f"invalid {POLICY_SETTING}: {_first_line(exc)}") from None


def check_checkpoint(rt: Runtime) -> None:
    """Load the MCNet checkpoint once (kept by the runtime), or refuse naming the setting at fault."""
    from pipeline.animation import ModelUnavailable

    path = rt.settings.mcnet_checkpoint
    if path is None:
        raise ConfigurationError(
            f"invalid {CHECKPOINT_SETTING}: not set; give the path of an MCNet checkpoint"
        )
    if not path.is_file():
        raise ConfigurationError(f"invalid {CHECKPOINT_SETTING}: {path} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise ConfigurationError(f"invalid {CHECKPOINT_SETTING}: {path} is empty (0 bytes)")
    try:
        rt.animator  # noqa: B018 - building the part is the check (hash, safe unpickling, strict keys)
    except (ModelUnavailable, RuntimeConfigError) as exc:
        message = _first_line(exc)
        setting = CHECKPOINT_SHA_SETTING if "sha256 mismatch" in message else CHECKPOINT_SETTING
        raise ConfigurationError(f"invalid {setting}: {message}") from None


def preflight(rt: Runtime, *, model: bool = True) -> None:
    """Validate the policy and (with `model`) the checkpoint once per runtime, before any job is claimed.

    Repeated calls on the same runtime are cheap: the policy and the model are runtime parts, built
    once. Raises `ConfigurationError` (one line) on the first problem.
    """
    check_policy(rt)
    if model:
        check_checkpoint(rt)
    logger.debug("preflight passed (model checked: %s)", model)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
