"""Face preprocessing on real faces: one usable face, FOMM-style crops, driving tracking, paste-back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.faces.geometry import CropBox, cut, feather_mask, square_around
from pipeline.faces.portrait import (
    DrivingCrops,
    FaceCutByBorderError,
    FaceTooSmallError,
    MultipleFacesError,
    NoFaceError,
    TooManyMissingFacesError,
    compose_output,
    crop_driving,
    paste_back,
    prepare_portrait,
)
from pipeline.images import load_image
from tests.fixtures.media import BadMedia

LIMIT = 40_000_000


def image(path: Path) -> np.ndarray:
    return load_image(path, max_pixels=LIMIT)


def test_portrait_crop_is_square_at_model_size_and_holds_the_face(portrait_path: Path) -> None:
    result = prepare_portrait(image(portrait_path), size=256)
    assert result.crop.shape == (256, 256, 3) and result.crop.dtype == np.uint8
    face, box = result.face, result.box
    assert face.side >= 64
    # The face box lies inside the crop, and fills roughly half of it (FOMM/VoxCeleb framing).
    assert box.x <= face.x and face.x + face.w <= box.x + box.side
    assert box.y <= face.y and face.y + face.h <= box.y + box.side
    assert 0.35 < face.side / box.side < 0.6
    assert result.image_size == (320, 240)


def test_crop_of_another_resolution(other_person_portrait: Path) -> None:
    assert prepare_portrait(image(other_person_portrait), size=128).crop.shape == (128, 128, 3)


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("no_face_image", NoFaceError, r"no face found in the portrait \(320x240"),
        ("two_faces_image", MultipleFacesError, r"shows 2 faces; exactly one is required"),
        ("small_face_image", FaceTooSmallError, r"is \d\d px wide; at least 64 px is required"),
        ("cut_face_image", FaceCutByBorderError, r"touches the image border"),
    ],
)
def test_unusable_portraits_are_refused(
    bad_media: BadMedia, name: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        prepare_portrait(image(getattr(bad_media, name)), size=256)
    assert isinstance(caught.value, InputError) and "\n" not in str(caught.value)


def test_error_details_are_kept(bad_media: BadMedia) -> None:
    with pytest.raises(MultipleFacesError) as many:
        prepare_portrait(image(bad_media.two_faces_image), size=256)
    assert many.value.count == 2
    with pytest.raises(FaceTooSmallError) as small:
        prepare_portrait(image(bad_media.small_face_image), size=256)
    assert 30 < small.value.size_px < 64 and small.value.minimum_px == 64


def test_the_minimum_face_size_is_a_parameter(bad_media: BadMedia) -> None:
    assert prepare_portrait(image(bad_media.small_face_image), size=256, min_face_px=32).crop.shape == (
        256,
        256,
        3,
    )


@pytest.fixture(scope="module")
def driving(talking_clip: Path) -> DrivingCrops:
    return crop_driving(talking_clip, size=128, max_missing_ratio=0.1)


def test_driving_video_is_tracked_and_cropped_consistently(driving: DrivingCrops) -> None:
    crops = driving
    report = crops.report
    assert report.frame_count == len(crops) == 50 and report.missing_frames == []
    assert len({box.side for box in report.boxes}) == 1  # one crop size for the whole clip
    steps = [abs(a.x - b.x) + abs(a.y - b.y) for a, b in zip(report.boxes, report.boxes[1:], strict=False)]
    assert max(steps) <= 4  # smoothed: no jumps between neighbouring frames
    frames = list(crops)
    assert len(frames) == 50 and all(f.shape == (128, 128, 3) for f in frames)
    assert report.as_dict()["missing_ratio"] == 0.0


def test_driving_crops_feed_the_face_detector(driving: DrivingCrops) -> None:
    from pipeline.faces.detection import detect_faces

    crops = list(driving)  # iterating twice streams the video twice, with the same crops
    assert np.array_equal(crops[7], list(driving)[7])
    assert len(detect_faces(crops[0])) == 1 and len(detect_faces(crops[-1])) == 1


def test_too_many_faceless_frames_is_an_error(bad_media: BadMedia) -> None:
    with pytest.raises(
        TooManyMissingFacesError,
        match=r"15 of 25 sampled frames show no face \(60% > 10% allowed\); "
        r"first at frame 10",
    ):
        crop_driving(bad_media.faceless_stretch_clip, size=64, max_missing_ratio=0.1)


def test_faceless_frames_within_the_limit_are_reported(bad_media: BadMedia) -> None:
    crops = crop_driving(bad_media.faceless_stretch_clip, size=64, max_missing_ratio=0.7)
    assert crops.report.missing_frames == list(range(10, 40, 2))
    assert crops.report.missing_ratio == pytest.approx(0.6)
    assert len(list(crops)) == 50


def test_a_driving_video_without_any_face(tmp_path: Path) -> None:
    from tests.fixtures.media import encode

    grey = encode(tmp_path / "grey.mp4", [np.full((64, 64, 3), 100, np.uint8)] * 10)
    with pytest.raises(NoFaceError, match="no face found in any of 5 sampled frames"):
        crop_driving(grey, size=64, max_missing_ratio=1.0)


def test_square_is_kept_inside_the_image_or_padded() -> None:
    inside = square_around((10.0, 10.0), 40, (200, 100))
    assert (inside.x, inside.y, inside.side) == (0, 0, 84)
    too_big = square_around((50.0, 50.0), 100, (120, 100))
    assert too_big.side == 210 and too_big.x < 0 and too_big.y < 0
    picture = np.arange(100 * 120 * 3, dtype=np.uint8).reshape(100, 120, 3)
    assert cut(picture, too_big, 64).shape == (64, 64, 3)


def test_paste_back_blends_only_inside_the_box_with_a_feathered_edge() -> None:
    portrait = np.full((120, 160, 3), 50, np.uint8)
    frame = np.full((64, 64, 3), 250, np.uint8)
    box = CropBox(x=40, y=20, side=80)
    out = paste_back(portrait, frame, box)
    assert out.shape == portrait.shape
    assert (out[:20] == 50).all() and (out[:, :40] == 50).all() and (out[:, 120:] == 50).all()
    assert (out[60, 80] == 250).all()  # centre: the animated frame
    edge_row = out[60, 40:80, 0].astype(int)
    assert edge_row[0] < 80 and np.all(np.diff(edge_row) >= 0)  # rises smoothly into the frame
    assert not np.shares_memory(out, portrait) and (portrait == 50).all()


def test_paste_back_clips_a_box_that_leaves_the_image() -> None:
    portrait = np.zeros((50, 50, 3), np.uint8)
    out = paste_back(portrait, np.full((32, 32, 3), 200, np.uint8), CropBox(x=-20, y=30, side=40))
    assert out.shape == (50, 50, 3) and out[45, 5, 0] > 150


def test_feather_mask_is_one_inside_zero_at_the_rim() -> None:
    mask = feather_mask(100)
    assert mask[50, 50] == pytest.approx(1.0) and mask[0, 0] < 0.01 and mask.max() <= 1.0


def test_output_modes(portrait_path: Path) -> None:
    full = image(portrait_path)
    result = prepare_portrait(full, size=256)
    animated = np.full((256, 256, 3), 10, np.uint8)
    assert compose_output(animated, mode="crop") is animated
    framed = compose_output(animated, mode="full_frame", portrait=full, box=result.box)
    assert framed.shape == (240, 320, 3)
    assert np.array_equal(framed[:, :10], full[:, :10])  # far from the face: the portrait itself
    with pytest.raises(ValueError, match="needs the full portrait"):
        compose_output(animated, mode="full_frame")
    with pytest.raises(ValueError, match="output mode must be"):
        compose_output(animated, mode="poster")  # type: ignore[arg-type]


def test_full_frame_output_has_even_size() -> None:
    odd = np.zeros((101, 75, 3), np.uint8)
    out = compose_output(
        np.zeros((32, 32, 3), np.uint8), mode="full_frame", portrait=odd, box=CropBox(x=10, y=10, side=40)
    )
    assert out.shape == (100, 74, 3)
