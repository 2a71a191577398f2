"""trim_heap gives the C heap's freed pages back to the system (glibc), as the engine relies on."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.inference.heap import HeapTrimmer

MIB = 2**20
ROOT = Path(__file__).resolve().parents[3]


def _glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


# Run in a fresh interpreter: the heap of a process that ran other tests has holes of its own, where
# the small arrays could land, letting the freed large ones merge and leave at once.
FRAGMENTED_HEAP = """
import json, sys
import numpy as np
from backend.inference.heap import trim_heap

def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

# As in a run: once a large array is freed, glibc serves arrays up to its size from the heap (its
# mmap threshold follows the largest block freed), not from their own mappings.
big = np.ones(24 * 2**20, dtype=np.uint8)
del big
arrays, keep = [], []
for _ in range(64):  # small arrays between the large ones: freed, these cannot merge
    arrays.append(np.ones(2**20, dtype=np.uint8))
    keep.append(np.ones(16384, dtype=np.uint8))
before = resident()
del arrays
held = resident()
trimmed = trim_heap()
print(json.dumps({"before": before, "held": held, "after": resident(), "trimmed": trimmed}))
"""


@pytest.mark.skipif(not _glibc(), reason="malloc_trim is glibc's")
def test_freed_arrays_held_by_the_heap_go_back_to_the_system():
    run = subprocess.run(
        [sys.executable, "-c", FRAGMENTED_HEAP],
        capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    memory = json.loads(run.stdout.strip().splitlines()[-1])
    # 64 MiB freed stay resident (what the engine ran into), until the trim gives them back.
    assert memory["before"] - memory["held"] < 8, memory
    assert memory["trimmed"] and memory["held"] - memory["after"] > 32, memory


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
