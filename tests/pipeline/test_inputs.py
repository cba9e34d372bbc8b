"""The input path policy: only files inside the allowed folders, symlinks followed before judging."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.inputs import InputMissingError, PathNotAllowedError, require_allowed_path


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    allowed, outside = tmp_path / "inputs", tmp_path / "private"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "ok.png").write_bytes(b"x")
    (outside / "secret.png").write_bytes(b"s")
    return allowed, outside


def test_a_file_inside_is_returned_resolved(folders: tuple[Path, Path]) -> None:
    allowed, _ = folders
    (allowed / "sub").mkdir()
    assert (
        require_allowed_path(allowed / "sub" / ".." / "ok.png", [allowed]) == (allowed / "ok.png").resolve()
    )


def test_a_file_outside_is_refused(folders: tuple[Path, Path]) -> None:
    allowed, outside = folders
    with pytest.raises(PathNotAllowedError, match="is outside the allowed input folders") as caught:
        require_allowed_path(outside / "secret.png", [allowed])
    assert isinstance(caught.value, InputError)


def test_dot_dot_escape_is_refused(folders: tuple[Path, Path]) -> None:
    allowed, _ = folders
    with pytest.raises(PathNotAllowedError, match="private/secret.png"):
        require_allowed_path(allowed / ".." / "private" / "secret.png", [allowed])


def test_a_symlink_inside_pointing_outside_is_refused(folders: tuple[Path, Path]) -> None:
    allowed, outside = folders
    link = allowed / "innocent.png"
    link.symlink_to(outside / "secret.png")
    with pytest.raises(PathNotAllowedError, match=r"really .*private/secret.png"):
        require_allowed_path(link, [allowed])


def test_a_symlinked_allowed_folder_still_works(folders: tuple[Path, Path], tmp_path: Path) -> None:
    allowed, _ = folders
    alias = tmp_path / "alias"
    alias.symlink_to(allowed)
    assert require_allowed_path(alias / "ok.png", [allowed]) == (allowed / "ok.png").resolve()
    assert require_allowed_path(allowed / "ok.png", [alias]) == (allowed / "ok.png").resolve()


def test_a_prefix_sibling_is_not_inside(folders: tuple[Path, Path], tmp_path: Path) -> None:
    allowed, _ = folders
    sibling = tmp_path / "inputs-evil"
    sibling.mkdir()
    (sibling / "x.png").write_bytes(b"x")
    with pytest.raises(PathNotAllowedError):
        require_allowed_path(sibling / "x.png", [allowed])


def test_missing_dangling_and_directories(folders: tuple[Path, Path]) -> None:
    allowed, _ = folders
    with pytest.raises(InputMissingError, match="does not exist"):
        require_allowed_path(allowed / "nope.png", [allowed])
    (allowed / "dangling.png").symlink_to(allowed / "gone.png")
    with pytest.raises(InputMissingError, match="does not exist"):
        require_allowed_path(allowed / "dangling.png", [allowed])
    (allowed / "dir").mkdir()
    with pytest.raises(InputMissingError, match="not a regular file"):
        require_allowed_path(allowed / "dir", [allowed])


def test_no_allowed_folders_refuses_everything(folders: tuple[Path, Path]) -> None:
    allowed, _ = folders
    with pytest.raises(PathNotAllowedError, match="no allowed input folders"):
        require_allowed_path(allowed / "ok.png", [])
