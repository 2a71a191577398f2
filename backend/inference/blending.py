"""Weighted accumulation of overlapping tile predictions, one chunk of tiles at a time.

Tiles arrive band by band (a band: ``band_rows`` neighbouring tile rows) and, within a band, chunk
by chunk (``TileLayout.bands``, ``TileLayout.column_chunks``); a chunk's tiles in any order. The
buffer holds the blend sums of the current chunk only, plus what later tiles still add to:

- the *seam*: the ``overlap`` columns the chunk shares with the next chunk of the same band;
- the *frontier*: the ``overlap`` rows each chunk shares with the band below, across the width.

When the scan moves past a chunk, its cells that no later tile touches are final and handed out;
the seam and frontier carry the rest. Memory is O(chunk width x tile + raster width x overlap): the
part that grows with the raster is the overlap band only (a few MiB for a Sentinel-2 tile).
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

# Called with (first output row, first output column, sums (bands, h, w), weights (h, w)); the
# arrays are views into the buffer, valid only during the call.
ReleaseCallback = Callable[[int, int, np.ndarray, np.ndarray], None]


class ChunkedBlendBuffer:
    """Sums of ``weight * prediction`` and of ``weight``, visited in (band, chunk) order.

    Coordinates are output cells; origins may be negative (the reflected margin).

    Args:
        bands: prediction bands.
        tile_cells: tile side in output cells.
        overlap_cells: overlap of neighbouring tiles in output cells.
        row_origins, col_origins: tile origins in output cells (evenly spaced).
        chunks: ``(first, stop)`` tile-column ranges, left to right, covering every column.
        release: receives each finished block of cells, in (band, chunk) order.
        band_rows: tile rows per band.
    """

    def __init__(
        self,
        bands: int,
        tile_cells: int,
        overlap_cells: int,
        row_origins: Sequence[int],
        col_origins: Sequence[int],
        chunks: List[Tuple[int, int]],
        release: ReleaseCallback,
        band_rows: int = 1,
    ):
        self.tile = tile_cells
        self.band_rows = band_rows
        self.overlap = overlap_cells
        self.step = tile_cells - overlap_cells
        self.rows = list(row_origins)
        self.cols = list(col_origins)
        self.chunks = chunks
        self.release = release
        self.chunk_of_col = np.empty(len(self.cols), dtype=np.int64)
        for index, (first, stop) in enumerate(chunks):
            self.chunk_of_col[first:stop] = index
        widest = max(stop - first for first, stop in chunks) * self.step + overlap_cells
        total_width = (len(self.cols) - 1) * self.step + tile_cells
        self.n_bands = -(-len(self.rows) // band_rows)
        tallest = min(band_rows, len(self.rows)) * self.step + overlap_cells
        self.sums = np.zeros((bands, tallest, widest), dtype=np.float32)
        self.weights = np.zeros((tallest, widest), dtype=np.float32)
        self.seam_sums = np.zeros((bands, tallest, overlap_cells), dtype=np.float32)
        self.seam_weights = np.zeros((tallest, overlap_cells), dtype=np.float32)
        self.frontier_sums = np.zeros((bands, overlap_cells, total_width), dtype=np.float32)
        self.frontier_weights = np.zeros((overlap_cells, total_width), dtype=np.float32)
        self.position = (0, 0)  # (band index, chunk index) being accumulated
        self.done = False

    def add(self, prediction: np.ndarray, weight: np.ndarray, row_index: int, col_index: int):
        """Add one tile's ``(bands, t, t)`` prediction with its ``(t, t)`` weight.

        ``row_index``, ``col_index`` index the tile in ``row_origins``, ``col_origins``. Tiles
        must come in (band, chunk) order; chunks passed over are released first.
        """
        self.add_weighted(prediction * weight, weight, row_index, col_index)

    def add_weighted(
        self, weighted: np.ndarray, weight: np.ndarray, row_index: int, col_index: int
    ) -> None:
        """As :meth:`add`, for a prediction already multiplied by its weight."""
        band, row_in_band = divmod(row_index, self.band_rows)
        target = (band, int(self.chunk_of_col[col_index]))
        if self.done or target < self.position:
            raise RuntimeError("tiles must be added in (band, column chunk) order")
        while self.position < target:
            self._finish_chunk()
        r = row_in_band * self.step
        c = (col_index - self.chunks[target[1]][0]) * self.step
        t = self.tile
        self.sums[:, r : r + t, c : c + t] += weighted
        self.weights[r : r + t, c : c + t] += weight

    def release_all(self) -> None:
        """Release every chunk still pending, through the end of the raster."""
        while not self.done:
            self._finish_chunk()

    def _finish_chunk(self) -> None:
        band, chunk_index = self.position
        first, stop = self.chunks[chunk_index]
        first_row = band * self.band_rows
        tile_rows = min(self.band_rows, len(self.rows) - first_row)
        o = self.overlap
        width = (stop - first) * self.step + o
        height = tile_rows * self.step + o
        last_chunk = chunk_index == len(self.chunks) - 1
        last_band = band == self.n_bands - 1
        final_width = width if last_chunk else width - o
        x = first * self.step  # offset in the frontier (from the first tile column)
        if o and not last_chunk:
            # The seam still gets the next chunk's first tiles: carried before the frontier is
            # added, so the next chunk adds the frontier for those columns exactly once.
            self.seam_sums[:, :height] = self.sums[:, :height, final_width:width]
            self.seam_weights[:height] = self.weights[:height, final_width:width]
        if o:
            self.sums[:, :o, :final_width] += self.frontier_sums[:, :, x : x + final_width]
            self.weights[:o, :final_width] += self.frontier_weights[:, x : x + final_width]
        final_height = height if last_band else height - o
        self.release(
            self.rows[first_row],
            self.cols[first],
            self.sums[:, :final_height, :final_width],
            self.weights[:final_height, :final_width],
        )
        if o and not last_band:
            self.frontier_sums[:, :, x : x + final_width] = self.sums[
                :, final_height:height, :final_width
            ]
            self.frontier_weights[:, x : x + final_width] = self.weights[
                final_height:height, :final_width
            ]
        self.sums[:, :height, :width] = 0.0
        self.weights[:height, :width] = 0.0
        if last_chunk:
            if last_band:
                self.done = True
                return
            self.position = (band + 1, 0)
        else:
            self.position = (band, chunk_index + 1)
            if o:
                self.sums[:, :height, :o] = self.seam_sums[:, :height]
                self.weights[:height, :o] = self.seam_weights[:height]


def weighted_mean(
    sums: np.ndarray, weights: np.ndarray, out: Optional[np.ndarray] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """Divide accumulated sums by weights; returns (mean, covered) with covered = weight > 0.

    Uncovered cells are 0 in the mean. ``out`` (float32, the shape of ``sums``) receives the mean
    instead of a new array.
    """
    covered = weights > 0
    whole = covered.all()
    # A plain divide by a safe denominator is several times faster than a masked divide.
    denominator = weights if whole else np.where(covered, weights, np.float32(1.0))
    mean = np.divide(sums, denominator[None], out=out, dtype=np.float32)
    if not whole:
        np.copyto(mean, np.float32(0.0), where=~covered[None])
    return mean, covered


def best_channel(scores: np.ndarray) -> np.ndarray:
    """``argmax`` over the first axis of ``(channels, h, w)`` scores (first maximum wins).

    One contiguous pass per channel instead of numpy's strided argmax along axis 0.
    """
    best = scores[0].copy()
    index = np.zeros(best.shape, dtype=np.intp)
    for channel in range(1, scores.shape[0]):
        better = scores[channel] > best
        index[better] = channel
        np.maximum(best, scores[channel], out=best)
    return index


def cell_fraction(valid: np.ndarray, stride: int) -> np.ndarray:
    """Fraction of valid pixels in each ``stride`` x ``stride`` cell of a square pixel mask."""
    if stride == 1:
        return valid.astype(np.float32)
    h, w = valid.shape
    blocks = valid.reshape(h // stride, stride, w // stride, stride)
    return blocks.mean(axis=(1, 3), dtype=np.float32)
