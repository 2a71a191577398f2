"""Handing memory that the run freed back to the system while it streams (glibc only).

glibc's ``malloc`` serves blocks above its mmap threshold with their own mappings and returns them
to the system on ``free``; smaller ones come from its heaps, whose freed pages it keeps. The
threshold is dynamic: each freed mapped block raises it to that block's size (up to 32 MiB). A run
allocates arrays whose size grows with the chunk and output windows (reads, tiles, blend
temporaries, blocks for the writer), so after the first of them is freed the later ones come from
the heaps, which then hold freed pages scattered among live ones: the process' resident memory grew
with the raster although what the engine keeps alive does not (docs/benchmarks.md, "Engine peak
RSS against the raster size", from ``benchmarks/inference/bench_shipped.py --rss-sizes``).

:func:`trim_heap` asks glibc to give free pages back (``malloc_trim``), which it does for the top
of each heap and, since glibc 2.8, for whole free pages inside them. The engine calls it once per
chunk (its cost is part of the engine's CPU time that docs/benchmarks.md sets beside the bare
ONNX Runtime loop). On other C libraries (macOS, Windows, musl) it
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Any, Optional


@lru_cache(maxsize=1)
def _malloc_trim() -> Optional[Any]:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def trim_heap() -> bool:
    """Give the C heap's free pages back to the system; whether the C library could."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
