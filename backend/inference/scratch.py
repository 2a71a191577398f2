"""Arrays a run fills again and again: the same memory for every chunk.

A streaming run makes the same few arrays for every chunk (a read window, its mask, its normalised
values, a finished block). Allocating them anew each time hands the C heap chunk-sized blocks to
give out and take back, and after the heap is trimmed (:mod:`.heap`) the kernel must fault their
pages in again: tens of thousands of page faults per run. A :class:`Scratch` keeps one array per
name and hands out a contiguous view of the size asked for, growing it only when a larger one is
asked for.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np


class Scratch:
    """Named reusable arrays; a view handed out is valid until the same name is asked for again."""

    def __init__(self) -> None:
        self._arrays: Dict[Tuple[str, str], np.ndarray] = {}

    def take(self, name: str, shape: Tuple[int, ...], dtype) -> np.ndarray:
        """A C-contiguous ``dtype`` array of ``shape`` (contents undefined)."""
        dtype = np.dtype(dtype)
        size = int(np.prod(shape))
        key = (name, dtype.str)
        array = self._arrays.get(key)
        if array is None or array.size < size:
            array = self._arrays[key] = np.empty(size, dtype=dtype)
        return array[:size].reshape(shape)
