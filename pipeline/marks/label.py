"""The visible disclosure: an "AI-generated" label burned into every frame with ffmpeg drawtext.

The text goes to ffmpeg through a `textfile`, never through the filter string, so no label text can
break or inject into the filter graph. The font is DejaVu Sans, shipped inside matplotlib's wheel (a
registry package the project already depends on), so the label renders the same on any machine.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import ffmpeg

from pipeline.errors import PipelineError
from pipeline.video import reader as video
from pipeline.video.ffmpeg import ffmpeg_exe, stderr_tail

logger = logging.getLogger(__name__)

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
CORNERS: tuple[Corner, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")
DEFAULT_TEXT = "AI-generated"
_POSITIONS: dict[str, tuple[str, str]] = {
    "top-left": ("{m}", "{m}"),
    "top-right": ("w-tw-{m}", "{m}"),
    "bottom-left": ("{m}", "h-th-{m}"),
    "bottom-right": ("w-tw-{m}", "h-th-{m}"),
}


class LabelError(PipelineError):
    """ffmpeg failed to burn the label in; the message carries the tail of its stderr."""


@dataclass(frozen=True)
class LabelSpec:
    """What to write and where; the font size follows the frame height so it stays readable.

    `height_fraction` 0.07 gives an 18-pixel font on a 256-pixel frame (legible), about 76 on 1080p.
    """

    text: str = DEFAULT_TEXT
    corner: Corner = "bottom-right"
    height_fraction: float = 0.07
    min_font_px: int = 14

    def __post_init__(self) -> None:
        if not self.text.strip() or len(self.text) > 64 or not self.text.isprintable():
            raise ValueError("`text` must be 1-64 printable characters")
        if self.corner not in CORNERS:
            raise ValueError(f"`corner` must be one of {CORNERS}, got {self.corner!r}")
        if not 0.02 <= self.height_fraction <= 0.3:
            raise ValueError("`height_fraction` must be between 0.02 and 0.3")

    def font_px(self, frame_width: int, frame_height: int) -> int:
        """Font size from the height, shrunk if the text would not fit the width (bold glyphs ~0.7 em)."""
        size = max(self.min_font_px, round(frame_height * self.height_fraction))
        fits = int((frame_width * 0.9) / (0.72 * len(self.text)))
        return max(8, min(size, fits))


def font_path() -> Path:
    """DejaVu Sans from matplotlib's package data (present wherever the project is installed)."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    if not path.is_file():
        raise LabelError(f"label font missing: {path}")
    return path


def burn_label(
    src: Path, dest: Path, *, spec: LabelSpec | None = None, crf: int = 18, tmp_dir: Path | None = None
) -> Path:
    """Write `dest`: `src` with the label drawn on a dark box in one corner (audio copied as is).

    Encodes H.264 yuv420p with +faststart at a low `crf`, because the watermark pass re-encodes after it.

    Raises:
        InputError: `src` is not a readable video (see `pipeline.video.reader`).
        LabelError: ffmpeg failed; `dest` is not left behind.

    Its temporary folder goes under `tmp_dir` (default: beside `dest`), so a killed run leaves it in the
    job's workspace, which is cleaned with the job, not in the system's temporary folder.
    """
    spec = spec or LabelSpec()
    src, dest = Path(src), Path(dest)
    info = video.probe(src)
    size = spec.font_px(info.width, info.height)
    margin = max(4, size // 2)
    x, y = (part.format(m=margin) for part in _POSITIONS[spec.corner])
    with tempfile.TemporaryDirectory(prefix="likeness-label-", dir=tmp_dir or dest.parent) as tmp:
        textfile = Path(tmp) / "label.txt"
        textfile.write_text(spec.text, encoding="utf-8")
        stream = ffmpeg.input(str(src))
        drawn = stream.video.drawtext(
            textfile=str(textfile),
            fontfile=str(font_path()),
            fontsize=size,
            fontcolor="white",
            box=1,
            boxcolor="black@0.65",
            boxborderw=max(2, size // 4),
            x=x,
            y=y,
            expansion="none",
        )
        partial = dest.with_name(f".{dest.name}.part.mp4")
        streams = [drawn, stream.audio] if info.has_audio else [drawn]
        out = ffmpeg.output(
            *streams,
            str(partial),
            vcodec="libx264",
            crf=crf,
            pix_fmt="yuv420p",
            movflags="+faststart",
            preset="veryfast",
            acodec="copy",
        )
        try:
            ffmpeg.run(out, cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True, overwrite_output=True)
        except ffmpeg.Error as exc:
            partial.unlink(missing_ok=True)
            raise LabelError(f"label failed on {src.name}: {stderr_tail(exc.stderr)}") from None
        partial.replace(dest)
    logger.info("labelled %s (%s, %d px)", dest.name, spec.corner, size)
    return dest
