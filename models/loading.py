"""Checkpoint files: strict, safe loading of the authors' format (plus our config) and atomic saving.

The authors' training writes `{"generator": sd, "kp_detector": sd, "discriminator": sd, "optimizer_*": ...,
"epoch": n}` from DDP-wrapped networks, so keys may carry a `module.` prefix. We read only the two networks
(everything else is returned as `extra`), with `torch.load(weights_only=True)` so a checkpoint cannot run
code, and we refuse anything that does not fit the configured architecture exactly.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from models.config import MCNetConfig, vox256
from models.digest import sha256_file
from models.errors import CheckpointError, ConfigError
from models.mcnet import MCNet

logger = logging.getLogger(__name__)

NETWORKS = ("kp_detector", "generator")
CONFIG_KEY = "config"


@dataclass(frozen=True)
class LoadedMCNet:
    """A model ready for inference, with what the audit record needs.

    Attributes:
        model: the networks, in eval mode, on the requested device and dtype.
        config: the architecture they were built from.
        sha256: hex digest of the checkpoint file (the model fingerprint).
        extra: the checkpoint's other top-level entries (epoch, optimizer states ...), untouched.
    """

    model: MCNet
    config: MCNetConfig
    sha256: str
    extra: dict[str, Any] = field(default_factory=dict)


def sidecar_config_path(path: str | os.PathLike[str]) -> Path:
    """Where a config JSON written beside a checkpoint lives: `<checkpoint>.config.json`."""
    path = Path(path)
    return path.with_name(path.name + ".config.json")


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (
        Exception
    ) as exc:  # torch.load raises many types (IndexError, UnpicklingError ...) on foreign files
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path.name} is not a readable torch checkpoint (truncated or not a checkpoint): {reason}"
        ) from None


def _resolve_config(path: Path, data: Mapping[str, Any], config: MCNetConfig | None) -> MCNetConfig:
    """Explicit argument, else the config stored inside, else a sidecar file, else the released vox-256."""
    if config is not None:
        return config
    try:
        if CONFIG_KEY in data:
            text = data[CONFIG_KEY]
            if not isinstance(text, str):
                raise CheckpointError(f"checkpoint {path.name}: `{CONFIG_KEY}` entry is not JSON text")
            return MCNetConfig.from_json(text)
        sidecar = sidecar_config_path(path)
        if sidecar.is_file():
            return MCNetConfig.from_json(sidecar.read_text(encoding="utf-8"))
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path.name}: stored config is invalid: {exc}") from None
    logger.info("checkpoint %s carries no config; assuming the released vox-256 architecture", path.name)
    return vox256()


def _check_state_dict(network: str, state: Any, expected: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip `module.`, then refuse the first missing, unexpected, mistyped or mis-shaped key."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"checkpoint entry `{network}` is not a state dict")
    cleaned: dict[str, Tensor] = {}
    for key, value in state.items():
        name = key.removeprefix("module.") if isinstance(key, str) else key
        if not isinstance(name, str) or not isinstance(value, Tensor):
            raise CheckpointError(f"checkpoint `{network}` entry {key!r} is not a named tensor")
        cleaned[name] = value
    for name in cleaned:
        if name not in expected:
            raise CheckpointError(
                f"checkpoint `{network}` has unexpected key `{name}` (another architecture or config?)"
            )
    for name, reference in expected.items():
        if name not in cleaned:
            raise CheckpointError(
                f"checkpoint `{network}` is missing key `{name}` (another architecture or config?)"
            )
        value = cleaned[name]
        if tuple(value.shape) != tuple(reference.shape):
            raise CheckpointError(
                f"checkpoint `{network}` key `{name}` has shape {tuple(value.shape)}, "
                f"expected {tuple(reference.shape)} (another architecture or config?)"
            )
        if value.is_floating_point() != reference.is_floating_point() or (
            not value.is_floating_point() and value.dtype != reference.dtype
        ):
            raise CheckpointError(
                f"checkpoint `{network}` key `{name}` has dtype {value.dtype}, expected {reference.dtype}"
            )
        if value.is_floating_point():
            if value.dtype != reference.dtype:
                value = value.to(reference.dtype)
            if not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"checkpoint `{network}` key `{name}` holds NaN or inf values")
        cleaned[name] = value.contiguous()
    return cleaned


def load_mcnet(
    path: str | os.PathLike[str],
    *,
    expected_sha256: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    config: MCNetConfig | None = None,
) -> LoadedMCNet:
    """Load a checkpoint strictly into a fresh MCNet.

    Args:
        path: the checkpoint file (authors' format, optionally with our `config` entry).
        expected_sha256: refuse the file unless its SHA-256 (hex) matches; checked before unpickling.
        device: where the model lives.
        dtype: floating dtype of the weights (float32 for exact inference).
        config: the architecture, when neither the checkpoint nor its sidecar records one.

    Returns:
        LoadedMCNet with the model in eval mode.

    Raises:
        CheckpointError: missing/unreadable/truncated file, sha256 mismatch, missing or unexpected keys,
            wrong shapes or dtypes, non-finite weights; the message names the first offending key.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    sha256 = sha256_file(path)
    if expected_sha256 is not None and sha256 != expected_sha256.strip().lower():
        raise CheckpointError(
            f"checkpoint {path.name} sha256 mismatch: expected {expected_sha256.strip().lower()}, got {sha256}"
        )
    data = _read(path)
    if not isinstance(data, Mapping) or not all(name in data for name in NETWORKS):
        raise CheckpointError(
            f"checkpoint {path.name} is not an MCNet checkpoint: needs `generator` and `kp_detector` entries"
        )
    resolved = _resolve_config(path, data, config)
    with torch.device("meta"):
        model = MCNet(resolved)
    for name in NETWORKS:
        network: nn.Module = getattr(model, name)
        state = _check_state_dict(name, data[name], network.state_dict())
        network.load_state_dict(state, strict=True, assign=True)
    model = model.to(device=device, dtype=dtype).eval()
    extra = {key: value for key, value in data.items() if key not in (*NETWORKS, CONFIG_KEY)}
    logger.info("loaded MCNet checkpoint %s (sha256 %s) on %s", path.name, sha256[:12], device)
    return LoadedMCNet(model=model, config=resolved, sha256=sha256, extra=extra)


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    config: MCNetConfig,
    generator: nn.Module,
    kp_detector: nn.Module,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Write the authors' format plus our config, atomically (temp file + rename); returns the sha256.

    The config is stored inside (`"config"`: JSON text) and beside (`<path>.config.json`) for humans.
    `extra` (epoch, optimizer states ...) is stored as is; it may not reuse the reserved keys.
    """
    path = Path(path)
    extra = dict(extra or {})
    clash = sorted(set(extra) & {*NETWORKS, CONFIG_KEY})
    if clash:
        raise CheckpointError(f"`extra` may not contain the reserved checkpoint key `{clash[0]}`")
    payload: dict[str, Any] = {
        "generator": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
        "kp_detector": {k: v.detach().cpu() for k, v in kp_detector.state_dict().items()},
        CONFIG_KEY: config.to_json(),
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda handle: torch.save(payload, handle))
    _atomic_write(sidecar_config_path(path), lambda handle: handle.write(config.to_json().encode("utf-8")))
    return sha256_file(path)


def _atomic_write(path: Path, write: Any) -> None:
    handle = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
