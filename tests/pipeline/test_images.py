"""Image loading on real and generated files: refusals before decoding, modes, EXIF rotation."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import InputError
from pipeline.images import (
    CorruptImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    UnsupportedImageError,
    load_image,
)
from tests.fixtures.media import BadMedia, png_header_only

LIMIT = 40_000_000


def reference(portrait_path: Path) -> np.ndarray:
    return np.asarray(Image.open(portrait_path).convert("RGB"))


def test_real_portraits_load_as_rgb(other_person_portrait: Path, astronaut_portrait: Path) -> None:
    hopper = load_image(other_person_portrait, max_pixels=LIMIT)
    assert hopper.shape == (600, 512, 3) and hopper.dtype == np.uint8
    assert load_image(astronaut_portrait, max_pixels=LIMIT).shape == (512, 512, 3)


def test_bomb_is_refused_from_the_header_before_decoding(bad_media: BadMedia) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(
            ImageTooLargeError,
            match=r"bomb.png is 20000×20000 = 400000000 pixels; at most 40000000 are allowed$",
        ):
            load_image(bad_media.bomb_image, max_pixels=LIMIT)  # 20000x20000: Pillow's own header guard
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000  # decoding would need 1.2 GB


def test_over_the_limit_is_refused_from_the_header(tmp_path: Path) -> None:
    bomb = png_header_only(tmp_path / "big.png", 10000, 9000)  # under Pillow's guard, over ours
    tracemalloc.start()
    try:
        with pytest.raises(
            ImageTooLargeError,
            match=r"big.png is 10000×9000 = 90000000 pixels; at most 40000000 are allowed$",
        ):
            load_image(bomb, max_pixels=LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000


def test_pixel_limit_is_exact(portrait_path: Path) -> None:
    assert load_image(portrait_path, max_pixels=320 * 240).shape == (240, 320, 3)
    with pytest.raises(ImageTooLargeError, match="320×240 = 76800 pixels; at most 76799 are allowed"):
        load_image(portrait_path, max_pixels=320 * 240 - 1)


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("tiny_image", ImageTooSmallError, r"is 1x1; each side must be >= 16 pixels"),
        ("animated_gif", UnsupportedImageError, r"is animated \(GIF, 2 frames\)"),
        ("truncated_image", CorruptImageError, r"corrupt or truncated"),
        ("text_file", NotAnImageError, r"not an image in a recognised format"),
    ],
)
def test_bad_images_are_refused_by_name(
    bad_media: BadMedia, name: str, error: type[Exception], message: str
) -> None:
    path = getattr(bad_media, name)
    with pytest.raises(error, match=message) as caught:
        load_image(path, max_pixels=LIMIT)
    assert isinstance(caught.value, InputError) and str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_video_given_as_an_image(talking_clip: Path) -> None:
    with pytest.raises(NotAnImageError, match="not an image"):
        load_image(talking_clip, max_pixels=LIMIT)


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(NotAnImageError, match="does not exist"):
        load_image(tmp_path / "nope.png", max_pixels=LIMIT)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(NotAnImageError, match=r"empty \(0 bytes\)"):
        load_image(tmp_path / "empty.png", max_pixels=LIMIT)


def test_still_gif_is_accepted(bad_media: BadMedia) -> None:
    assert load_image(bad_media.still_gif, max_pixels=LIMIT).shape == (240, 320, 3)


def test_greyscale_becomes_three_equal_channels(bad_media: BadMedia) -> None:
    image = load_image(bad_media.grey_image, max_pixels=LIMIT)
    assert image.shape == (240, 320, 3)
    assert np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 1], image[:, :, 2])


def test_cmyk_becomes_rgb_close_to_the_original(bad_media: BadMedia, portrait_path: Path) -> None:
    assert Image.open(bad_media.cmyk_image).mode == "CMYK"
    image = load_image(bad_media.cmyk_image, max_pixels=LIMIT)
    assert image.shape == (240, 320, 3)
    assert np.mean(np.abs(image.astype(int) - reference(portrait_path))) < 8


def test_alpha_is_flattened_onto_white(bad_media: BadMedia, portrait_path: Path) -> None:
    image = load_image(bad_media.alpha_image, max_pixels=LIMIT)
    assert image.shape == (240, 320, 3)
    assert (image[:, :80] == 255).all()
    assert np.array_equal(image[:, 80:], reference(portrait_path)[:, 80:])


def test_exif_rotation_is_applied(bad_media: BadMedia, portrait_path: Path) -> None:
    stored = Image.open(bad_media.exif_rotated)
    assert stored.size == (240, 320)  # pixels are stored sideways
    image = load_image(bad_media.exif_rotated, max_pixels=LIMIT)
    assert image.shape == (240, 320, 3)  # upright again
    assert np.mean(np.abs(image.astype(int) - reference(portrait_path))) < 6


def test_sixteen_bit_greyscale(tmp_path: Path) -> None:
    values = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    image = load_image(path, max_pixels=LIMIT)
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert image[0, 0, 0] == 0 and image[-1, -1, 0] == 255


def test_formats_outside_the_list_are_refused(tmp_path: Path, portrait_path: Path) -> None:
    path = tmp_path / "portrait.ppm"
    Image.open(portrait_path).save(path)
    with pytest.raises(UnsupportedImageError, match=r"portrait.ppm is PPM; accepted: BMP, GIF, JPEG"):
        load_image(path, max_pixels=LIMIT)
