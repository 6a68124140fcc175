"""Chunk buffers go back to the system as soon as they are freed, so RSS tracks live data.

glibc serves an allocation above its mmap threshold with its own mapping, returned at free; but
the threshold starts at 128 KiB and rises, after the first such free, up to 32 MiB. Past that,
10 MiB chunk buffers come from the threads' heaps, whose freed space is kept and fragments:
peak RSS then wanders by several chunks from run to run. A fixed threshold (set once, when the
ingest flow is built) keeps every chunk buffer in a mapping of its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["pin_mmap_threshold"]

_M_MMAP_THRESHOLD = -3
CHUNK_BUFFER_THRESHOLD = 1024 * 1024


def pin_mmap_threshold(threshold: int = CHUNK_BUFFER_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # musl and others: their allocator already returns
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
