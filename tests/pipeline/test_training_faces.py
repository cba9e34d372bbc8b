"""`train prepare` with face tracking: the one face of a real clip is found, tracked and cropped; a clip
with no face or with two people is refused with one line and nothing is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from console.cli.app import app
from models.training.clips import load_clip, read_manifest
from pipeline.faces.detection import MultipleFacesError, NoFaceError
from pipeline.training.faces import face_tracked_frames
from pipeline.training.frames import prepare_training_data
from tests.fixtures.media import ffmpeg

CLIP = Path(__file__).resolve().parents[2] / ".." / "shared" / "media" / "talking_man_320x240_15s.mov"


@pytest.fixture(scope="module")
def two_people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faces") / "two.mp4"
    ffmpeg(
        "-t",
        "2",
        "-i",
        str(CLIP),
        "-t",
        "2",
        "-i",
        str(CLIP),
        "-filter_complex",
        "[0:v][1:v]hstack",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(out),
    )
    return out


@pytest.fixture(scope="module")
def no_face(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faces") / "pattern.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=2:size=320x240:rate=25",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(out),
    )
    return out


def test_the_face_of_a_real_clip_is_tracked_and_cropped(tmp_path: Path) -> None:
    frames = face_tracked_frames(CLIP, size=64, max_frames=20)
    assert frames.shape == (20, 64, 64, 3) and frames.dtype == np.uint8
    manifest = prepare_training_data(
        [CLIP], tmp_path / "data", size=64, max_frames=20, crop="face", subjects=["S-1"]
    )
    assert [c.subject for c in manifest.clips] == ["S-1", "S-1"]
    centred = prepare_training_data([CLIP], tmp_path / "centre", size=64, max_frames=20, crop="center")
    tracked = load_clip(manifest, manifest.clips[0])
    plain = load_clip(centred, centred.clips[0])
    assert tracked.shape == plain.shape and not bool((tracked == plain).all())  # a different (face) crop


def test_a_clip_without_a_face_is_refused(no_face: Path, tmp_path: Path) -> None:
    with pytest.raises(NoFaceError, match="training video pattern.mp4 shows no face"):
        prepare_training_data([no_face], tmp_path / "data", size=64, crop="face")
    assert not (tmp_path / "data").exists()


def test_a_clip_of_two_people_is_refused(two_people: Path, tmp_path: Path) -> None:
    with pytest.raises(MultipleFacesError, match="training video two.mp4 .* shows 2 faces; exactly one"):
        face_tracked_frames(two_people, size=64)
    result = CliRunner().invoke(
        app,
        [
            "train",
            "prepare",
            str(two_people),
            "--out",
            str(tmp_path / "data"),
            "--size",
            "64",
            "--subject",
            "S-1",
        ],
    )
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "shows 2 faces" in errors[0]
    assert not (tmp_path / "data").exists()


def test_voxceleb_style_frame_folders_still_work(tmp_path: Path) -> None:
    folder = tmp_path / "id0001" / "clip"
    folder.mkdir(parents=True)
    for index, frame in enumerate(face_tracked_frames(CLIP, size=64, max_frames=6)):
        from PIL import Image

        Image.fromarray(frame).save(folder / f"{index:04d}.png")
    manifest = prepare_training_data(
        [folder], tmp_path / "data", size=64, heldout_fraction=0, crop="face", subjects=["S-1"]
    )
    assert len(manifest.clips) == 1 and manifest.clips[0].frames == 6
    assert read_manifest(tmp_path / "data").clips[0].subject == "S-1"
