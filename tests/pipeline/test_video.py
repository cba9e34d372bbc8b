"""Video I/O on real files: probe, streamed decode, encode with audio, and every bad-input case."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.video.reader import (
    NotAVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
    UnsupportedCodecError,
    VideoEncodeError,
    VideoReadError,
    VideoWriter,
    iter_frames,
    probe,
)
from pipeline.video.writer import FrameShapeError
from tests.fixtures.media import BadMedia, decode_frames


def test_probe_reports_the_real_clip(talking_clip: Path) -> None:
    info = probe(talking_clip)
    assert (info.width, info.height, info.codec, info.pix_fmt) == (320, 240, "h264", "yuv420p")
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.frame_count == 50
    assert info.has_audio and info.rotation == 0 and not info.variable_frame_rate


def test_iter_frames_streams_every_frame_as_rgb(talking_clip: Path, talking_frames: list[np.ndarray]) -> None:
    frames = list(iter_frames(talking_clip))
    assert len(frames) == 50
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in frames)
    # Same pixels as an independent ffmpeg decode.
    assert np.array_equal(frames[17], talking_frames[17])


def test_iter_frames_resizes(talking_clip: Path) -> None:
    first = next(iter(iter_frames(talking_clip, size=64)))
    assert first.shape == (64, 64, 3)
    assert next(iter(iter_frames(talking_clip, size=(96, 48)))).shape == (48, 96, 3)


def test_stopping_early_ends_the_decoder(talking_clip: Path) -> None:
    stream = iter_frames(talking_clip)
    next(stream)
    stream.close()  # must not hang, raise, or report truncation
    assert len(list(iter_frames(talking_clip))) == 50


def test_decoding_fewer_frames_than_probed_is_an_error(talking_clip: Path) -> None:
    info = probe(talking_clip).model_copy(update={"frame_count": 80})
    with pytest.raises(TruncatedVideoError, match=r"decoded 50 of 80 frames"):
        list(iter_frames(talking_clip, info=info))


def test_writer_round_trip_with_audio_in_sync(
    tmp_path: Path, talking_clip: Path, talking_frames: list[np.ndarray]
) -> None:
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps=25, size=(320, 240), audio_from=talking_clip) as writer:
        for frame in talking_frames[:30]:
            writer.write(frame)
    info = probe(out)
    assert (info.codec, info.pix_fmt, info.frame_count, info.has_audio) == ("h264", "yuv420p", 30, True)
    streams = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,duration", "-of", "csv=p=0", str(out)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    durations = dict(line.split(",") for line in streams)
    assert float(durations["audio"]) == pytest.approx(1.2, abs=0.05)  # cut to 30 frames / 25 fps
    assert float(durations["video"]) == pytest.approx(1.2, abs=0.05)
    assert out.read_bytes()[4:8] == b"ftyp" and out.read_bytes().find(b"moov") < out.read_bytes().find(
        b"mdat"
    )
    decoded = decode_frames(out)
    psnr = 10 * np.log10(255**2 / np.mean((decoded[5].astype(float) - talking_frames[5]) ** 2))
    assert psnr > 30
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_writer_pads_audio_when_the_video_is_longer(tmp_path: Path, bad_media: BadMedia) -> None:
    out = tmp_path / "long.mp4"
    frame = np.full((64, 64, 3), 90, np.uint8)
    with VideoWriter(out, fps=25, size=(64, 64), audio_from=bad_media.audio_only) as writer:  # 1 s of audio
        for _ in range(50):
            writer.write(frame)
    audio = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "a",
            "-show_entries",
            "stream=duration",
            "-of",
            "csv=p=0",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert float(audio) == pytest.approx(2.0, abs=0.05)


def test_writer_silent_when_the_source_has_no_audio(tmp_path: Path, bad_media: BadMedia) -> None:
    out = tmp_path / "silent.mp4"
    with VideoWriter(out, fps=25, size=(64, 64), audio_from=bad_media.unsupported_codec) as writer:
        writer.write(np.zeros((64, 64, 3), np.uint8))
        writer.write(np.zeros((64, 64, 3), np.uint8))
    assert not probe(out).has_audio


def test_failure_inside_the_block_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(out, fps=25, size=(64, 64)) as writer:
        writer.write(np.zeros((64, 64, 3), np.uint8))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_no_frames_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    with (
        pytest.raises(VideoEncodeError, match="no frames were written"),
        VideoWriter(tmp_path / "empty.mp4", fps=25, size=(64, 64)),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


def test_wrong_frame_is_refused(tmp_path: Path) -> None:
    with (
        pytest.raises(FrameShapeError, match=r"frame 1 must be uint8 \(64, 64, 3\), got uint8 \(64, 32, 3\)"),
        VideoWriter(tmp_path / "x.mp4", fps=25, size=(64, 64)) as writer,
    ):
        writer.write(np.zeros((64, 64, 3), np.uint8))
        writer.write(np.zeros((64, 32, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="even frame size"):
        VideoWriter(tmp_path / "odd.mp4", fps=25, size=(63, 64))


def test_encoder_failure_carries_ffmpeg_stderr(tmp_path: Path) -> None:
    with (
        pytest.raises(VideoEncodeError, match=r"ffmpeg .*(preset|Error|error)") as caught,
        VideoWriter(tmp_path / "x.mp4", fps=25, size=(64, 64), preset="no-such-preset") as writer,
    ):
        for _ in range(20):
            writer.write(np.zeros((64, 64, 3), np.uint8))
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_paths_are_never_given_to_a_shell(tmp_path: Path, talking_clip: Path) -> None:
    odd = tmp_path / "clip; touch pwned $(touch pwned2).mp4"
    odd.write_bytes(talking_clip.read_bytes())
    assert probe(odd).frame_count == 50
    out = tmp_path / "out `touch pwned3`.mp4"
    with VideoWriter(out, fps=25, size=(320, 240), audio_from=odd) as writer:
        for frame in iter_frames(odd):
            writer.write(frame)
    assert out.is_file()
    assert not any(p.name.startswith("pwned") for p in tmp_path.iterdir())
    assert not any(p.name.startswith("pwned") for p in Path.cwd().iterdir())


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("empty_video", VideoReadError, r"is empty \(0 bytes\)"),
        ("zero_frame_video", NoVideoStreamError, r"has no video stream \(streams: none\)"),
        ("corrupt_video", VideoReadError, r"cannot be read: .*Invalid data found"),
        ("truncated_video", TruncatedVideoError, r"promises 50 frames, only \d+ are present"),
        ("truncated_no_index", VideoReadError, r"moov atom not found"),
        ("audio_only", NoVideoStreamError, r"has no video stream \(streams: audio\)"),
        ("unsupported_codec", UnsupportedCodecError, r"uses video codec 'ffv1'"),
    ],
)
def test_bad_videos_are_refused_by_name(
    bad_media: BadMedia, name: str, error: type[Exception], message: str
) -> None:
    path = getattr(bad_media, name)
    with pytest.raises(error, match=message) as caught:
        probe(path)
    assert isinstance(caught.value, InputError)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_missing_video(tmp_path: Path) -> None:
    with pytest.raises(VideoReadError, match="does not exist"):
        probe(tmp_path / "nope.mp4")


def test_an_image_given_as_a_video(portrait_path: Path) -> None:
    with pytest.raises(NotAVideoError, match="is a still image"):
        probe(portrait_path)


def test_variable_frame_rate_is_resampled_to_a_constant_rate(bad_media: BadMedia) -> None:
    info = probe(bad_media.variable_frame_rate)
    assert info.variable_frame_rate
    frames = list(iter_frames(bad_media.variable_frame_rate, size=32))
    # Constant rate: as many frames as duration x average rate (within the tolerance), not the raw count.
    assert abs(len(frames) - info.duration * info.fps) <= 2
    assert info.fps == pytest.approx(info.frame_count / info.duration, rel=0.05)


def test_rotated_video_is_reported_and_decoded_upright(bad_media: BadMedia) -> None:
    info = probe(bad_media.rotated_video)
    assert info.rotation == 90
    assert (info.width, info.height) == (240, 320)
    assert next(iter(iter_frames(bad_media.rotated_video))).shape == (320, 240, 3)
