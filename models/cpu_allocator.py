"""Keep freed memory in the process so MCNet's large per-frame buffers are reused, not page-faulted anew.

A vox-256 frame allocates and frees dozens of 8-64 MB tensors (attention scores, 512-channel maps). By
default glibc serves each from a fresh mmap and returns it to the kernel on free, so every frame pays
tens of thousands of page faults zero-filling the same memory again: 10-17 % of a CPU frame here. Raising
glibc's mmap and trim thresholds (`mallopt`, the documented knob; the same thing jemalloc/tcmalloc do
by default) keeps that memory in the heap for reuse. The cost is that the worker's resident memory stays
at its peak between jobs instead of shrinking, which a long-lived render worker does anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Allocations above this still get their own mapping (glibc caps the heap-served size anyway).
MMAP_THRESHOLD_BYTES = 1 << 30
TRIM_THRESHOLD_BYTES = 2**31 - 1

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Apply the glibc thresholds once per process; True when they are in effect (Linux with glibc).

    Elsewhere (macOS, musl, Windows) this is a logged no-op returning False: correctness never depends on it.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        logger.info("no glibc mallopt in %s: CPU allocator left at its defaults", name)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    logger.debug("glibc mmap/trim thresholds raised: %s", _applied)
    return _applied
