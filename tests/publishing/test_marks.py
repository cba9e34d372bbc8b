"""The visible label and the invisible watermark on real video through real ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.marks import watermark
from pipeline.marks.label import LabelSpec, burn_label
from tests.publishing.conftest import SOURCE_VIDEO, ffmpeg

PAYLOAD = 0x5EED1234


def first_frame(path: Path, size: int = 256) -> np.ndarray:
    raw = subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-i",
            str(path),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(size, size, 3).astype(np.int16)


@pytest.fixture(scope="module")
def marked(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return watermark.embed(clip, tmp_path_factory.mktemp("wm") / "marked.mp4", PAYLOAD)


@pytest.mark.parametrize("corner", ["bottom-right", "top-left"])
def test_label_is_burned_into_the_chosen_corner_only(clip: Path, tmp_path: Path, corner: str) -> None:
    out = burn_label(clip, tmp_path / "labelled.mp4", spec=LabelSpec(corner=corner))  # type: ignore[arg-type]
    before, after = first_frame(clip), first_frame(out)
    diff = np.abs(after - before).sum(axis=2)
    rows, cols = np.nonzero(diff > 60)
    assert rows.size > 300  # a box with white text, not codec noise
    box_h = rows.max() - rows.min()
    assert box_h >= 18  # an 18 px font on a 256 px frame: readable
    centre_row, centre_col = rows.mean(), cols.mean()
    if corner == "bottom-right":
        assert centre_row > 200 and centre_col > 128
    else:
        assert centre_row < 56 and centre_col < 128
    # White glyph pixels over a dark box: both extremes are present inside the changed area.
    luma = after[rows, cols].mean(axis=1)
    assert (luma > 200).sum() > 50 and (luma < 60).sum() > 50


def test_label_text_cannot_inject_filters(clip: Path, tmp_path: Path) -> None:
    spec = LabelSpec(text="AI: 100% synthetic, [x]'; drawbox", corner="top-right")
    out = burn_label(clip, tmp_path / "labelled.mp4", spec=spec)
    assert out.exists()
    with pytest.raises(ValueError, match="`corner` must be one of"):
        LabelSpec(corner="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`text` must be 1-64 printable characters"):
        LabelSpec(text="line\nbreak")


def test_label_refuses_a_missing_video(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.mp4 does not exist"):
        burn_label(tmp_path / "nope.mp4", tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []


def test_word_round_trip_and_error_detection() -> None:
    bits = watermark.encode_word(PAYLOAD)
    assert len(bits) == watermark.WORD_BITS == 56
    scores = np.array(bits, dtype=float) * 0.8 + 0.1
    assert watermark.decode_scores(scores) == (PAYLOAD, 0)
    weak = scores.copy()
    weak[[3, 40]] = 1 - weak[[3, 40]]  # two wrong bits...
    weak[[3, 40]] = np.where(weak[[3, 40]] > 0.5, 0.52, 0.48)  # ...that the vote was unsure about
    assert watermark.decode_scores(weak) == (PAYLOAD, 2)
    confident_wrong = scores.copy()
    confident_wrong[5] = 1 - confident_wrong[5]  # a confidently wrong bit is not guessed away
    assert watermark.decode_scores(confident_wrong)[0] is None
    with pytest.raises(ValueError, match="unsigned 32-bit"):
        watermark.encode_word(2**32)


def test_random_scores_almost_never_pass_the_crc() -> None:
    rng = np.random.default_rng(0)
    false_hits = sum(watermark.decode_scores(rng.random(56))[0] is not None for _ in range(2000))
    assert false_hits == 0


def test_watermark_survives_crf28_and_half_size(marked: Path, tmp_path: Path) -> None:
    assert watermark.extract(marked) == PAYLOAD
    crf28 = tmp_path / "crf28.mp4"
    ffmpeg("-i", str(marked), "-c:v", "libx264", "-crf", "28", str(crf28))
    assert watermark.extract(crf28) == PAYLOAD
    half = tmp_path / "half.mp4"
    ffmpeg("-i", str(marked), "-vf", "scale=128:128", "-c:v", "libx264", "-crf", "28", str(half))
    reading = watermark.read(half)
    assert reading.payload == PAYLOAD
    assert reading.frames_read == 50


def test_unmarked_video_reads_as_unmarked(clip: Path) -> None:
    reading = watermark.read(clip)
    assert reading.payload is None
    assert reading.frames_read > 0


def test_watermark_is_invisible_enough(clip: Path, marked: Path) -> None:
    a, b = first_frame(clip).astype(float), first_frame(marked).astype(float)
    psnr = 10 * np.log10(255**2 / np.mean((a - b) ** 2))
    assert psnr > 30


def test_watermark_on_a_larger_frame(tmp_path: Path) -> None:
    src = tmp_path / "wide.mp4"
    ffmpeg(
        "-i",
        str(SOURCE_VIDEO),
        "-t",
        "2",
        "-vf",
        "scale=480:360",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(src),
    )
    out = watermark.embed(src, tmp_path / "wide-marked.mp4", 77)
    assert watermark.extract(out) == 77
    assert watermark.extract(src) is None


def test_embed_refuses_bad_input_and_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(InputError, match=r"video .*bad.mp4 cannot be read"):
        watermark.embed(bad, tmp_path / "out.mp4", 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]
