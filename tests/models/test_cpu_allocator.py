"""The glibc allocator thresholds are applied once per process where glibc exists, a no-op elsewhere."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import pytest

from models import cpu_allocator

ROOT = Path(__file__).resolve().parents[2]


def _has_glibc_mallopt() -> bool:
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallopt")
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _has_glibc_mallopt(), reason="needs glibc")
def test_thresholds_apply_once_in_a_fresh_process() -> None:
    code = (
        "from models import cpu_allocator as c; first = c.retain_freed_memory(); "
        "c._applied = 'cached'; print(first, c.retain_freed_memory())"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "cached"]  # applied, then answered from the first call


def test_non_linux_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_allocator, "_applied", None)
    monkeypatch.setattr(cpu_allocator.sys, "platform", "darwin")
    assert cpu_allocator.retain_freed_memory() is False
    assert cpu_allocator._applied is False
