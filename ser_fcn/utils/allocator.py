"""glibc malloc settings that keep a long training run's resident memory flat.

Batches of many shapes allocate and free tensors of many sizes, a few MB each. glibc serves
a block above its mmap threshold (128 KiB at start) with mmap and gives it back on free, but
each such free of a block up to 32 MiB *raises* the threshold to that block's size. After the
first large tensors are freed, later ones of that size come from the heap instead, and a heap
with live blocks above freed ones cannot be trimmed: resident memory grows from epoch to epoch
(see docs/performance.md). Fixing the threshold at 1 MiB (which also turns the raising off)
keeps tensor storage on mmap, returned to the system on free; small objects stay on the heap.

`configure_allocator()` runs first thing in `python -m ser_fcn` (ser_fcn/__main__.py), so
every command and every process it launches (cross-validation folds, DDP ranks) has it. An
explicit `MALLOC_MMAP_THRESHOLD_` in the environment wins; other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3  # mallopt parameter number, glibc's malloc.h
MMAP_THRESHOLD_BYTES = 1 << 20  # 1 MiB: tensors above it are mmapped; measured in docs/performance.md

applied = False  # whether this process set the threshold


def configure_allocator() -> bool:
    """Fix glibc's mmap threshold at MMAP_THRESHOLD_BYTES; True if it was set here."""
    global applied
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False  # the user chose; glibc read it at start-up
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False  # not glibc (musl, macOS, Windows): nothing to configure
    if not hasattr(libc, "gnu_get_libc_version"):
        return False
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    return applied
