"""The dependency direction is the architecture: walk every module's imports and refuse a wrong-way edge."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"models", "pipeline", "governance", "flows", "console", "migrations"}

# package -> imports it must never make (ours and third-party).
FORBIDDEN: dict[str, set[str]] = {
    "models": {
        "pipeline",
        "governance",
        "flows",
        "console",
        "migrations",
        "prefect",
        "sqlalchemy",
        "alembic",
        "ffmpeg",
        "deepface",
        "minio",
        "cv2",
        "fastapi",
    },
    "pipeline": {
        "governance",
        "flows",
        "console",
        "migrations",
        "prefect",
        "sqlalchemy",
        "alembic",
        "fastapi",
    },
    "governance": {
        "models",
        "pipeline",
        "flows",
        "console",
        "prefect",
        "torch",
        "deepface",
        "ffmpeg",
        "minio",
        "cv2",
    },
    "flows": {"console"},
    "console": {"models", "migrations"},
    "migrations": {"models", "pipeline", "flows", "console", "prefect", "torch"},
}


def imported_roots(path: Path) -> set[str]:
    """Top-level module names imported anywhere in a file (absolute imports only; relative stay inside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_import_rules(package: str) -> None:
    files = python_files(package)
    assert files, f"package {package} has no modules"
    violations = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in sorted(imported_roots(path) & FORBIDDEN[package])
    ]
    assert violations == []


def test_walker_catches_a_wrong_way_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom governance.audit.record import record\nimport torch.nn as nn\n")
    assert imported_roots(bad) == {"os", "governance", "torch"}
    assert imported_roots(bad) & FORBIDDEN["models"] == {"governance"}
