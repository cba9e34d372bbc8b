"""`docs/architecture.md` stays true: its file map names every module of the five packages, and no other.

A newcomer finds the one file for a stage from the map; a module added without a line there, or a line
left behind for a module that moved, fails here instead of misleading the next reader.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "pipeline", "governance", "flows", "console")
MAP_HEADING = "## File map"


def _modules() -> set[str]:
    return {
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__init__.py"
    }


def _mapped() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert MAP_HEADING in text, "docs/architecture.md has no file map section"
    section = text.split(MAP_HEADING, 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([\w/]+\.py)` \|", section, flags=re.M))


def test_every_module_is_in_the_file_map() -> None:
    missing = sorted(_modules() - _mapped())
    assert not missing, f"modules missing from docs/architecture.md's file map: {missing}"


def test_the_file_map_names_no_module_that_does_not_exist() -> None:
    stale = sorted(_mapped() - _modules())
    assert not stale, f"docs/architecture.md's file map names modules that do not exist: {stale}"
