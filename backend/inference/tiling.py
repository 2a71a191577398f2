"""Where the tiles go and how much each tile's prediction counts: the window layout and blend weight.

Tiles of ``tile_size`` pixels step by ``tile_size - overlap`` pixels. The layout starts ``overlap``
pixels before the raster and ends at least ``overlap`` pixels after it (those pixels are filled by
reflection), so every real pixel lies in the full-weight centre of some tile: tile borders, where a
model with a receptive field sees padding, only ever contribute inside an overlap, down-weighted.

The blend weight rises over the overlap as ``sin²`` and falls as ``cos²``: where two tiles overlap,
the falling edge of one and the rising edge of the next sum to exactly 1, and the weight is never
exactly zero inside a tile, so dividing by the accumulated weight is always defined.

Tiles are visited in chunks: a band of ``band_rows`` neighbouring tile rows (:attr:`TileLayout.bands`)
is cut into chunks of neighbouring tile columns (:attr:`TileLayout.column_chunks`), visited band by
band and, within a band, left to right. The engine reads, blends and writes one chunk at a time, so
its working memory is set by the chunk's size, not by the raster's width. A band as tall as the
inputs' blocks lets each chunk read its blocks once: with one tile row at a time, every block row of
a tiled input was wanted again by the next three or four tile rows, after GDAL's bounded block cache
(:mod:`.block_cache`) had dropped it to read the rest of the row, and was read and decoded again
each time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

# Pixels of raster width handled at once. Batches of tiles run across chunks, so a narrow chunk
# costs no model efficiency; it keeps a chunk's input and blend canvas a few MiB even with many
# bands, with one chunk in the model and one being read ahead (peak memory measured in
# docs/benchmarks.md).
DEFAULT_CHUNK_WIDTH = 512
# Tile rows a band may hold (its chunks' memory grows with it; see plan_tiles).
MAX_BAND_ROWS = 8


@dataclass(frozen=True)
class TileLayout:
    """The windows of one inference run, in pixels of the reference grid.

    Attributes:
        width, height: reference raster size.
        tile_size: window side.
        overlap: overlap between neighbouring windows (a multiple of ``align``).
        align: every window origin is a multiple of this (the coarsest output stride), so output
            cells of strided outputs fall on one grid.
        col_origins, row_origins: window origins; the first is ``-overlap`` (outside the raster).
        chunk_tiles: tile columns per column chunk (0: the whole row is one chunk).
        band_rows: tile rows per band.
    """

    width: int
    height: int
    tile_size: int
    overlap: int
    align: int
    col_origins: List[int]
    row_origins: List[int]
    chunk_tiles: int = 0
    band_rows: int = 1

    @property
    def column_chunks(self) -> List[Tuple[int, int]]:
        """``(first, stop)`` tile-column index ranges of the chunks, left to right."""
        n = len(self.col_origins)
        size = self.chunk_tiles if self.chunk_tiles > 0 else n
        return [(first, min(first + size, n)) for first in range(0, n, size)]

    @property
    def bands(self) -> List[Tuple[int, int]]:
        """``(first, stop)`` tile-row index ranges of the bands, top to bottom."""
        n, size = len(self.row_origins), max(1, self.band_rows)
        return [(first, min(first + size, n)) for first in range(0, n, size)]

    @property
    def step(self) -> int:
        return self.tile_size - self.overlap

    @property
    def n_tiles(self) -> int:
        return len(self.col_origins) * len(self.row_origins)


def overlap_pixels(tile_size: int, overlap: float, align: int = 1) -> int:
    """Overlap in pixels for an overlap fraction of the tile, rounded down to a multiple of ``align``.

    Raises:
        ValueError: the fraction is outside [0, 1).
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be a fraction of the tile in [0, 1), not {overlap}")
    pixels = round(overlap * tile_size)
    pixels = (pixels // align) * align
    return min(pixels, tile_size - align)


def plan_tiles(
    width: int,
    height: int,
    tile_size: int,
    overlap: int,
    align: int = 1,
    chunk_width: int = DEFAULT_CHUNK_WIDTH,
    band_height: int = 1,
) -> TileLayout:
    """Lay out windows of ``tile_size`` with ``overlap`` pixels over a ``width`` x ``height`` raster.

    Args:
        width, height: raster size in pixels.
        tile_size: window side in pixels.
        overlap: overlap of neighbouring windows in pixels (a multiple of ``align``).
        align: window origins are multiples of this (the coarsest output stride).
        chunk_width: about how many pixels of width a one-tile-row band processes at once; a
            band of several tile rows takes proportionally narrower chunks (the same area).
            Chunks hold whole tile columns, at least one.
        band_height: the rows a band should span at least (the inputs' block height): bands hold
            whole tile rows, at most :data:`MAX_BAND_ROWS`.
    """
    if chunk_width < 1:
        raise ValueError(f"chunk width must be at least 1 pixel, not {chunk_width}")
    if tile_size % align:
        raise ValueError(f"tile size {tile_size} is not a multiple of the output stride {align}")
    if overlap % align or not 0 <= overlap < tile_size:
        raise ValueError(f"overlap {overlap} must be a multiple of {align} below the tile size")
    step = tile_size - overlap
    band_rows = min(MAX_BAND_ROWS, max(1, math.ceil(band_height / step)))
    return TileLayout(
        width=width,
        height=height,
        tile_size=tile_size,
        overlap=overlap,
        align=align,
        col_origins=_axis_origins(width, tile_size, overlap),
        row_origins=_axis_origins(height, tile_size, overlap),
        chunk_tiles=max(1, round(chunk_width / (step * band_rows))),
        band_rows=band_rows,
    )


def _axis_origins(size: int, tile_size: int, overlap: int) -> List[int]:
    step = tile_size - overlap
    # Cover [-overlap, size + overlap): the padded margins keep real pixels out of the edge ramps.
    extent = size + 2 * overlap
    count = 1 if extent <= tile_size else math.ceil((extent - tile_size) / step) + 1
    return [-overlap + k * step for k in range(count)]


def blend_weight(cells: int, overlap_cells: int) -> np.ndarray:
    """The (cells, cells) blend weight of one tile whose neighbours overlap it by ``overlap_cells``.

    Values are in (0, 1]: 1 in the centre, ``sin²`` ramps over the overlap at each side (sampled at
    cell centres, so never 0). With ramps disjoint (overlap <= half the tile) the weights of
    neighbouring tiles sum to 1 across every overlap.
    """
    ramp_1d = np.ones(cells, dtype=np.float64)
    if overlap_cells > 0:
        k = (np.arange(overlap_cells) + 0.5) / overlap_cells
        rising = np.sin(0.5 * np.pi * k) ** 2
        ramp_1d[:overlap_cells] *= rising
        ramp_1d[cells - overlap_cells :] *= rising[::-1]
    return np.outer(ramp_1d, ramp_1d).astype(np.float32)
