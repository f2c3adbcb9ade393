"""Memory the C allocator keeps once freed, given back to the system as a run streams
(:func:`release_freed_memory`), so that a run's peak does not grow with the scene's width.
This module never imports TensorFlow."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

__all__ = ["release_freed_memory"]


def release_freed_memory() -> bool:
    """Give the memory glibc's allocator holds free back to the system (``malloc_trim(0)``);
    True when something was given back. A no-op (False) on other C libraries.

    glibc raises its mmap threshold (up to 32 MiB) as large buffers are freed, after which
    buffers as wide as the scene (the block rows of a window row, the blend sums of the
    overlap) are carved from the threads' heaps and stay there, resident, once freed: the
    peak grew by some 4 KB a pixel of the scene's width. Trimming as each block row is
    written keeps the allocator's speed (the threshold is left alone) and hands those pages
    back; ``bench/memory_scaling.py`` measures it.
    """
    trim = _malloc_trim()
    return trim is not None and bool(trim(0))


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ``ldconfig``); None
    elsewhere."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim
