"""Input path policy: a job may only read files that lie inside the operator's allowed input folders.

The check is made on the fully resolved path (every symlink followed, `..` collapsed), and the resolved
path is what the caller goes on to open, so a link inside an allowed folder that points elsewhere is
refused, and the file that was checked is the file that is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pipeline.errors import InputError


class PathNotAllowedError(InputError):
    """The path lies outside every allowed input folder (after following symlinks)."""


class InputMissingError(InputError):
    """The path does not exist or is not a regular file."""


def require_allowed_path(path: Path | str, allowed_dirs: Iterable[Path | str]) -> Path:
    """Return the resolved path of a regular file inside one of `allowed_dirs`, or refuse it.

    Raises:
        InputMissingError: nothing readable is there (a dangling link counts as missing).
        PathNotAllowedError: the real location is outside every allowed folder, or none is configured.
    """
    given = Path(path).expanduser()
    roots = [Path(folder).expanduser().resolve() for folder in allowed_dirs]
    if not roots:
        raise PathNotAllowedError(f"input {given} refused: no allowed input folders are configured")
    try:
        real = given.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):  # RuntimeError: a symlink loop
        raise InputMissingError(f"input {given} does not exist") from None
    if not any(real.is_relative_to(root) for root in roots):
        shown = ", ".join(str(root) for root in roots)
        raise PathNotAllowedError(
            f"input {given} (really {real}) is outside the allowed input folders: {shown}"
        )
    if not real.is_file():
        raise InputMissingError(f"input {given} is not a regular file")
    return real
