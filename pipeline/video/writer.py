"""Video out: H.264 yuv420p MP4 with +faststart, frames piped to ffmpeg, the driving video's audio muxed in.

The file appears at its path only when the `with` block ends cleanly: frames go to a hidden partial
file that is renamed at the end, and any failure (an exception in the block, ffmpeg dying, no frames)
deletes it. The audio of `audio_from` is cut (or padded with silence) to exactly frames / fps seconds,
so it stays in step with the frames that were written, however many that turned out to be.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO

import ffmpeg
import numpy as np

from pipeline.errors import InputError, PipelineError
from pipeline.video.ffmpeg import ffmpeg_exe, ffprobe_exe, read_log, stderr_tail

logger = logging.getLogger(__name__)


class VideoEncodeError(PipelineError):
    """ffmpeg failed to encode or mux; the message carries its stderr tail. Nothing is left at the path."""


class FrameShapeError(InputError):
    """A frame given to the writer has the wrong size, channels or dtype."""


class VideoWriter:
    """Write RGB frames to an MP4 (H.264, yuv420p, +faststart); use as a context manager.

    Args:
        path: the final file; written atomically on a clean exit.
        fps: frames per second (the output's constant rate).
        size: (width, height); both even (yuv420p needs it).
        audio_from: a video whose first audio track is muxed in, cut to the frames' duration (None: silent;
            a file without audio is accepted and gives a silent output).
        crf: x264 quality (lower is better); 18 is visually lossless for faces.
        preset: x264 speed/size trade-off.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        fps: float,
        size: tuple[int, int],
        audio_from: Path | str | None = None,
        crf: int = 18,
        preset: str = "medium",
    ) -> None:
        width, height = size
        if width < 2 or height < 2 or width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs an even frame size of at least 2x2, got {width}x{height}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.size = (int(width), int(height))
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.crf, self.preset = crf, preset
        self.frames_written = 0
        self._partial = self.path.with_name(f".{self.path.stem}.{os.getpid()}.partial.mp4")
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> VideoWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        width, height = self.size
        source = ffmpeg.input(
            "pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=self.fps
        )
        args = (
            ffmpeg.output(
                source,
                str(self._partial),
                vcodec="libx264",
                pix_fmt="yuv420p",
                crf=self.crf,
                preset=self.preset,
                movflags="+faststart",
                r=self.fps,
            )
            .global_args("-nostdin", "-loglevel", "error", "-y")
            .compile(cmd=ffmpeg_exe())
        )
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log
        )
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame of the writer's size."""
        if self._process is None or self._process.stdin is None:
            raise RuntimeError("VideoWriter.write called outside its `with` block")
        width, height = self.size
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (height, width, 3):
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise FrameShapeError(
                f"frame {self.frames_written} must be uint8 ({height}, {width}, 3), got {got}"
            )
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except (BrokenPipeError, OSError):
            self._process.wait()
            raise VideoEncodeError(
                f"ffmpeg stopped while encoding {self.path} at frame {self.frames_written}: {self._tail()}"
            ) from None
        self.frames_written += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is not None:
                self._abort()
                return
            self._finish()
        finally:
            if self._log is not None:
                self._log.close()
            self._partial.unlink(missing_ok=True)

    def _tail(self) -> str:
        return stderr_tail(read_log(self._log)) if self._log is not None else "no ffmpeg log"

    def _abort(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def _finish(self) -> None:
        process = self._process
        assert process is not None and process.stdin is not None
        try:
            process.stdin.close()
        except BrokenPipeError:
            pass
        code = process.wait()
        if self.frames_written == 0:
            raise VideoEncodeError(f"no frames were written to {self.path}; nothing was saved")
        if code != 0:
            raise VideoEncodeError(f"ffmpeg failed to encode {self.path}: {self._tail()}")
        if self.audio_from is not None and _has_audio(self.audio_from):
            self._mux_audio()
        os.replace(self._partial, self.path)
        logger.debug("wrote %d frames to %s", self.frames_written, self.path)

    def _mux_audio(self) -> None:
        """Copy the video stream, add `audio_from`'s first audio track cut/padded to frames / fps seconds."""
        assert self.audio_from is not None
        duration = self.frames_written / self.fps
        muxed = self._partial.with_name(self._partial.name.replace(".partial", ".muxed"))
        video = ffmpeg.input(str(self._partial)).video
        audio = ffmpeg.input(str(self.audio_from))["a:0"].filter("apad")
        out = ffmpeg.output(
            video, audio, str(muxed), vcodec="copy", acodec="aac", t=f"{duration:.6f}", movflags="+faststart"
        ).global_args("-nostdin", "-loglevel", "error", "-y")
        try:
            ffmpeg.run(out, cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True)
        except ffmpeg.Error as exc:
            muxed.unlink(missing_ok=True)
            raise VideoEncodeError(
                f"muxing the audio of {self.audio_from} into {self.path} failed: {stderr_tail(exc.stderr)}"
            ) from None
        os.replace(muxed, self._partial)


def _has_audio(path: Path) -> bool:
    """Whether `path` has an audio stream (a driving video without sound is fine: the output is silent)."""
    try:
        data = ffmpeg.probe(str(path), cmd=ffprobe_exe(), select_streams="a")
    except ffmpeg.Error as exc:
        raise VideoEncodeError(f"cannot read the audio source {path}: {stderr_tail(exc.stderr)}") from None
    return bool(data.get("streams"))
