"""Where the ffmpeg binaries are, and how their failures become one-line errors.

Every call goes through ffmpeg-python graphs or explicit argument lists: never a shell string.
`ffmpeg` is Debian's when installed (the project's set-up installs it), else the static binary from the
`imageio-ffmpeg` wheel; `ffprobe` is Debian's only (imageio-ffmpeg ships none).
"""

from __future__ import annotations

import functools
import shutil
from typing import IO

from pipeline.errors import PermanentError

STDERR_TAIL_CHARS = 300


class FfmpegMissing(PermanentError):
    """ffmpeg or ffprobe is not installed: a set-up problem, never retried."""


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: Debian's on PATH, else imageio-ffmpeg's static build."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        raise FfmpegMissing(
            "ffmpeg not found: install Debian's ffmpeg or the imageio-ffmpeg package"
        ) from None
    return str(imageio_ffmpeg.get_ffmpeg_exe())


@functools.cache
def ffprobe_exe() -> str:
    """Path of Debian's ffprobe (ffmpeg-python's `probe` needs it)."""
    found = shutil.which("ffprobe")
    if not found:
        raise FfmpegMissing("ffprobe not found: install Debian's ffmpeg package (apt-get install ffmpeg)")
    return found


def stderr_tail(raw: bytes | str | None) -> str:
    """The last meaningful lines of ffmpeg's stderr, joined into one line (for error messages)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (raw or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "ffmpeg gave no error message"
    tail = " | ".join(lines[-3:])
    return tail if len(tail) <= STDERR_TAIL_CHARS else "..." + tail[-STDERR_TAIL_CHARS:]


def read_log(handle: IO[bytes]) -> bytes:
    """Everything written so far to a temporary stderr file."""
    handle.flush()
    handle.seek(0)
    return handle.read()
