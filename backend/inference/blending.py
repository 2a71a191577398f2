"""Weighted accumulation of overlapping tile predictions, one row band of tiles at a time.

The buffer holds one tile's height of output rows across the whole (padded) width. Tiles arrive in
row order; before a tile of the next tile row is added, the rows above it are final and are handed
out (and the buffer shifts), so memory is O(width x tile_size) whatever the raster height.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


class BlendBuffer:
    """Sums of ``weight * prediction`` and of ``weight`` for a band of output rows.

    Coordinates are output cells; columns may start before 0 (the reflected margin).

    Args:
        bands: prediction bands.
        tile_cells: tile side in output cells (the buffer's height).
        col_start: output column of the buffer's first column (negative: padding).
        width: buffer width in cells (covers every tile column).
        row_start: output row of the first tile row.
    """

    def __init__(self, bands: int, tile_cells: int, col_start: int, width: int, row_start: int):
        self.tile_cells = tile_cells
        self.col_start = col_start
        self.top = row_start
        self.sums = np.zeros((bands, tile_cells, width), dtype=np.float32)
        self.weights = np.zeros((tile_cells, width), dtype=np.float32)

    def add(self, prediction: np.ndarray, weight: np.ndarray, row: int, col: int) -> None:
        """Add one tile's ``(bands, t, t)`` prediction with its ``(t, t)`` weight at (row, col)."""
        r = row - self.top
        c = col - self.col_start
        t = self.tile_cells
        if r < 0 or r + t > self.tile_cells:
            raise RuntimeError("tiles must be added in row order after release_until(row)")
        self.sums[:, r : r + t, c : c + t] += prediction * weight
        self.weights[r : r + t, c : c + t] += weight

    def release_until(self, row: int) -> Optional[Tuple[int, np.ndarray, np.ndarray]]:
        """Hand out the finished rows above output row ``row`` and shift the buffer down to it.

        Returns:
            (first row, sums (bands, h, width), weights (h, width)) or None when no row is finished.
        """
        if row <= self.top:
            return None
        count = min(row - self.top, self.tile_cells)
        released = (self.top, self.sums[:, :count].copy(), self.weights[:count].copy())
        self.sums[:, : self.tile_cells - count] = self.sums[:, count:]
        self.sums[:, self.tile_cells - count :] = 0.0
        self.weights[: self.tile_cells - count] = self.weights[count:]
        self.weights[self.tile_cells - count :] = 0.0
        self.top = row
        return released

    def release_all(self) -> Tuple[int, np.ndarray, np.ndarray]:
        """Hand out every row still held (at the end of the run)."""
        released = self.release_until(self.top + self.tile_cells)
        assert released is not None
        return released


def weighted_mean(sums: np.ndarray, weights: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Divide accumulated sums by weights; returns (mean, covered) with covered = weight > 0."""
    covered = weights > 0
    mean = np.zeros_like(sums)
    np.divide(sums, weights[None], out=mean, where=covered[None])
    return mean, covered


def cell_fraction(valid: np.ndarray, stride: int) -> np.ndarray:
    """Fraction of valid pixels in each ``stride`` x ``stride`` cell of a square pixel mask."""
    if stride == 1:
        return valid.astype(np.float32)
    h, w = valid.shape
    blocks = valid.reshape(h // stride, stride, w // stride, stride)
    return blocks.mean(axis=(1, 3), dtype=np.float32)
