"""Handing memory that a run freed back to the system while it streams (glibc only).

glibc's ``malloc`` serves blocks above its mmap threshold with their own mappings and returns them
to the system on ``free``; smaller ones come from its heaps, whose freed pages it keeps. The
threshold is dynamic: each freed mapped block raises it to that block's size (up to 32 MiB). A run
allocates chunk- and batch-sized arrays (reads, model results, blend temporaries, blocks for the
writer), so after the first of them is freed the later ones come from the heaps, which then hold
freed pages scattered among live ones: the process' resident memory grew with the raster although
what the engine keeps alive does not.

:func:`trim_heap` asks glibc to give free pages back (``malloc_trim``: the top of each heap and,
since glibc 2.8, whole free pages inside them). Trimming after every chunk keeps memory flattest but
costs a page fault for every page the next chunk's arrays touch again (they reuse the heap's free
pages), in system CPU time that grows with the number of trims. A :class:`HeapTrimmer` therefore
lets the heap grow by :data:`TRIM_MARGIN` and trims only past it. Figures: docs/benchmarks.md,
"Engine peak RSS against the raster size" (``benchmarks/inference/bench_shipped.py
--rss-sizes``); peak, page faults and trims of one run per margin:
``benchmarks/inference/probe_memory.py`` (2048² cloud removal, chunks read into reused arrays:
4 MiB about 78k faults in 22-23 trims, 8 MiB about 59k in 4-5 and a 4 MiB higher peak, 9.2 against
9.8-9.9 CPU-s in two alternating pairs: too few to claim, and the higher peak counts against the
flat memory this keeps). On other C libraries (macOS, Windows, musl) nothing is trimmed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import lru_cache
from typing import Any, Optional

# Growth of resident memory since the last trim that the heap may keep.
TRIM_MARGIN = 4 * 2**20

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


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


def resident_bytes() -> Optional[int]:
    """The process' resident memory, or None where /proc does not say."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class HeapTrimmer:
    """Trims the heap when resident memory has grown by ``margin`` bytes since the first check or
    the last trim; call :meth:`check` at a steady point of a loop (the engine: after each chunk)."""

    def __init__(self, margin: int = TRIM_MARGIN):
        self.margin = margin
        self.limit: Optional[int] = None
        self.trims = 0

    def check(self) -> None:
        if _malloc_trim() is None:
            return
        resident = resident_bytes()
        if resident is None:
            return
        if self.limit is None:
            self.limit = resident + self.margin
        elif resident > self.limit:
            trim_heap()
            self.trims += 1
            # What the trim could not give back is live: the next trim waits for new growth.
            self.limit = max(self.limit, (resident_bytes() or resident) + self.margin)
