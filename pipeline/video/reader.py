"""Video in: probe a file and stream its frames through an ffmpeg pipe with bounded memory.

A driving video is refused early and by name when it is not a video (an image, an audio file, an empty
or corrupt file) or uses a codec outside `SUPPORTED_CODECS`. Decoding never truncates silently: the
number of frames read is compared with the probed count (`TruncatedVideoError`). Variable frame rate
input is resampled to its average rate so frames, timestamps and audio stay in step. Rotated phone
videos come out upright (ffmpeg's autorotation), and `VideoInfo` reports the upright size.
The writer lives in `pipeline.video.writer` and is re-exported here.
"""

from __future__ import annotations

import logging
import math
import subprocess
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np
from pydantic import BaseModel, ConfigDict

from pipeline.errors import InputError
from pipeline.video.ffmpeg import ffmpeg_exe, ffprobe_exe, read_log, stderr_tail
from pipeline.video.writer import VideoEncodeError, VideoWriter

__all__ = [
    "SUPPORTED_CODECS",
    "VideoError",
    "VideoReadError",
    "NotAVideoError",
    "NoVideoStreamError",
    "UnsupportedCodecError",
    "TruncatedVideoError",
    "VideoTooLongError",
    "VideoEncodeError",
    "VideoInfo",
    "VideoWriter",
    "probe",
    "iter_frames",
]

logger = logging.getLogger(__name__)

# Codecs a driving video may use: the common camera, phone and editing codecs ffmpeg decodes well.
SUPPORTED_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mjpeg", "prores", "mpeg2video"})
# Demuxers that read still images; a "video" that comes through one of these is a picture.
_IMAGE_FORMATS = ("image2", "_pipe", "gif", "webp", "apng")
# Decoded frames may differ from the container's count by this much (edit lists, VFR resampling).
FRAME_COUNT_TOLERANCE = 2


class VideoError(InputError):
    """Base of the video input errors (bad input: never retried)."""


class VideoReadError(VideoError):
    """ffprobe or ffmpeg cannot read the file (missing, empty, corrupt); carries ffmpeg's stderr tail."""


class NotAVideoError(VideoError):
    """The file is a still image (or a single picture) where a video was expected."""


class NoVideoStreamError(VideoError):
    """The container holds no video stream (an audio file, say)."""


class UnsupportedCodecError(VideoError):
    """The video stream's codec is not in `SUPPORTED_CODECS`."""


class TruncatedVideoError(VideoError):
    """Fewer frames decoded than the container promised: the file is cut or damaged."""


class VideoTooLongError(VideoError):
    """Longer, or with more frames, than allowed: refused from ffprobe's answer, before any decoding."""


class VideoInfo(BaseModel):
    """What ffprobe says about a video; `width`/`height` are the upright (rotation-applied) size."""

    model_config = ConfigDict(frozen=True)

    path: str
    duration: float  # seconds
    fps: float  # average frame rate
    width: int
    height: int
    codec: str
    pix_fmt: str | None
    rotation: int  # display rotation in degrees counter-clockwise (ffprobe's display matrix): 0, 90, 180, 270
    has_audio: bool
    frame_count: int  # frames a decoder will deliver at `fps`
    variable_frame_rate: bool


def probe(path: Path | str, *, max_seconds: float | None = None, max_frames: int | None = None) -> VideoInfo:
    """Describe a video file, or refuse it with a one-line error naming the cause.

    With `max_seconds` / `max_frames`, the container's header is read first (no packet is counted, no
    frame decoded) and a video that says it is longer is refused at once; the packet count of the full
    probe is checked against the limit too, so a header that understates the length does not get past.

    Raises:
        VideoReadError, NotAVideoError, NoVideoStreamError, UnsupportedCodecError, VideoTooLongError.
    """
    target = Path(path)
    if not target.is_file():
        raise VideoReadError(f"video {target} does not exist or is not a file")
    if target.stat().st_size == 0:
        raise VideoReadError(f"video {target} is empty (0 bytes)")
    limited = max_seconds is not None or max_frames is not None
    try:
        if limited:
            _check_header_limits(
                target,
                ffmpeg.probe(str(target), cmd=ffprobe_exe(), v="error"),
                max_seconds=max_seconds,
                max_frames=max_frames,
            )
        data = ffmpeg.probe(str(target), cmd=ffprobe_exe(), v="error", count_packets=None)
    except ffmpeg.Error as exc:
        raise VideoReadError(f"video {target} cannot be read: {stderr_tail(exc.stderr)}") from None
    info = _describe(target, data)
    if limited:
        _check_limits(target, info.duration, info.frame_count, max_seconds=max_seconds, max_frames=max_frames)
    return info


def _check_header_limits(
    target: Path, data: dict[str, Any], *, max_seconds: float | None, max_frames: int | None
) -> None:
    """Refuse from the header alone: the declared duration, and the declared (or implied) frame count."""
    video = next((s for s in data.get("streams", []) if s.get("codec_type") == "video"), None)
    if video is None:
        return  # `_describe` names what is missing
    duration = _float(video.get("duration")) or _float(data.get("format", {}).get("duration"))
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    frames = int(_float(video.get("nb_frames"))) or round(duration * fps)
    _check_limits(target, duration, frames, max_seconds=max_seconds, max_frames=max_frames)


def _check_limits(
    target: Path, duration: float, frames: int, *, max_seconds: float | None, max_frames: int | None
) -> None:
    if max_seconds is not None and duration > max_seconds:
        raise VideoTooLongError(
            f"video {target.name} lasts {duration:.1f} s, over the limit of {max_seconds:g} s"
        )
    if max_frames is not None and frames > max_frames:
        raise VideoTooLongError(f"video {target.name} has {frames} frames, over the limit of {max_frames}")


def _describe(target: Path, data: dict[str, Any]) -> VideoInfo:
    streams: list[dict[str, Any]] = data.get("streams", [])
    fmt: dict[str, Any] = data.get("format", {})
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
        ),
        None,
    )
    if video is None:
        kinds = sorted({str(s.get("codec_type")) for s in streams}) or ["none"]
        raise NoVideoStreamError(f"{target} has no video stream (streams: {', '.join(kinds)})")
    format_name = str(fmt.get("format_name", ""))
    if any(part in format_name for part in _IMAGE_FORMATS):
        raise NotAVideoError(f"{target} is a still image ({format_name}), not a video")
    codec = str(video.get("codec_name") or "unknown")
    if codec not in SUPPORTED_CODECS:
        raise UnsupportedCodecError(
            f"{target} uses video codec {codec!r}; supported: {', '.join(sorted(SUPPORTED_CODECS))}"
        )
    avg, real = _rate(video.get("avg_frame_rate")), _rate(video.get("r_frame_rate"))
    fps = avg or real
    duration = _float(video.get("duration")) or _float(fmt.get("duration"))
    if not fps or not duration:
        raise NotAVideoError(f"{target} has no usable frame rate or duration (a single picture?)")
    packets = int(video.get("nb_read_packets") or 0)
    promised = int(video.get("nb_frames") or 0)
    if promised and packets < promised - FRAME_COUNT_TOLERANCE:
        raise TruncatedVideoError(
            f"video {target} is truncated: its index promises {promised} frames, only {packets} are present"
        )
    vfr = bool(avg and real and abs(avg - real) / real > 0.01)
    frame_count = round(duration * fps) if vfr or not (promised or packets) else (promised or packets)
    if frame_count <= 1:
        raise NotAVideoError(f"{target} holds {frame_count} frame(s): a picture, not a video")
    rotation = _rotation(video)
    width, height = int(video["width"]), int(video["height"])
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(
        path=str(target),
        duration=duration,
        fps=fps,
        width=width,
        height=height,
        codec=codec,
        pix_fmt=video.get("pix_fmt"),
        rotation=rotation,
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
        frame_count=frame_count,
        variable_frame_rate=vfr,
    )


def _rate(value: object) -> float:
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(rate) if rate > 0 else 0.0


def _float(value: object) -> float:
    try:
        number = float(str(value))
    except ValueError:
        return 0.0
    return number if math.isfinite(number) and number > 0 else 0.0


def _rotation(video: dict[str, Any]) -> int:
    """Display rotation from the display matrix side data (or the legacy, clockwise `rotate` tag)."""
    degrees = 0.0
    for side in video.get("side_data_list", []) or []:
        if "rotation" in side:
            degrees = float(side["rotation"])
    if not degrees and "rotate" in (video.get("tags") or {}):
        degrees = -float(video["tags"]["rotate"])
    return int(round(degrees)) % 360


def iter_frames(
    path: Path | str,
    *,
    size: int | tuple[int, int] | None = None,
    info: VideoInfo | None = None,
) -> Iterator[np.ndarray]:
    """Yield the video's frames as (H, W, 3) uint8 RGB arrays, one at a time, upright.

    Args:
        path: the video.
        size: resize every frame to `size` x `size` (int) or (width, height); None keeps the upright size.
        info: a `probe` result already at hand (probed again when None).

    Raises:
        VideoReadError: ffmpeg failed while decoding (the message carries its stderr tail).
        TruncatedVideoError: fewer frames came out than the probe promised.
    """
    info = info or probe(path)
    width, height = (size, size) if isinstance(size, int) else (size or (info.width, info.height))
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    stream = ffmpeg.input(str(path)).video
    if info.variable_frame_rate:
        stream = stream.filter("fps", fps=info.fps)
    if (width, height) != (info.width, info.height):
        stream = stream.filter("scale", width, height, flags="area")
    args = (
        ffmpeg.output(stream, "pipe:", format="rawvideo", pix_fmt="rgb24")
        .global_args("-nostdin", "-loglevel", "error")
        .compile(cmd=ffmpeg_exe())
    )
    frame_bytes = width * height * 3
    count, finished = 0, False
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        assert process.stdout is not None
        try:
            while chunk := process.stdout.read(frame_bytes):
                if len(chunk) < frame_bytes:
                    break  # a partial last frame: counted as missing below
                yield np.frombuffer(chunk, np.uint8).reshape(height, width, 3)
                count += 1
            finished = True
        finally:
            if not finished and process.poll() is None:
                process.kill()  # the consumer stopped early (or failed): no need to decode the rest
            process.stdout.close()
            code = process.wait()
        if code != 0:
            raise VideoReadError(f"decoding {path} failed after {count} frames: {stderr_tail(read_log(log))}")
    if count < info.frame_count - FRAME_COUNT_TOLERANCE:
        raise TruncatedVideoError(f"video {path} is truncated: decoded {count} of {info.frame_count} frames")
    logger.debug("decoded %d frames from %s", count, path)
