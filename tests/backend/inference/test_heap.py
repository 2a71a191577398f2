"""trim_heap gives the C heap's freed pages back to the system (glibc), as the engine relies on."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from backend.inference.heap import HeapTrimmer, trim_heap

MIB = 2**20


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096 / MIB


def _glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not _glibc(), reason="malloc_trim is glibc's")
def test_freed_arrays_held_by_the_heap_go_back_to_the_system():
    # As in a run: once a large array is freed, glibc serves arrays up to its size from the heap
    # (its mmap threshold follows the largest block freed), not from their own mappings.
    big = np.ones(24 * MIB, dtype=np.uint8)
    del big
    arrays, keep = [], []
    for _ in range(64):  # small arrays between the large ones: freed, these cannot merge
        arrays.append(np.ones(MIB, dtype=np.uint8))
        keep.append(np.ones(16384, dtype=np.uint8))
    del arrays
    held = _resident_mib()
    assert trim_heap()
    after = _resident_mib()
    assert held - after > 32, (held, after)  # 64 MiB were freed
    assert sum(int(array.sum()) for array in keep) == 64 * 16384


@pytest.mark.skipif(not _glibc(), reason="malloc_trim is glibc's")
def test_the_trimmer_trims_only_past_its_margin():
    trimmer = HeapTrimmer(margin=16 * MIB)
    trimmer.check()  # the first check sets the limit
    trimmer.check()
    assert trimmer.trims == 0
    grown = np.ones(32 * MIB, dtype=np.uint8)  # live memory past the margin
    trimmer.check()
    assert trimmer.trims == 1
    trimmer.check()  # still live, no new growth: no second trim
    assert trimmer.trims == 1
    assert grown.sum() == 32 * MIB
