"""Tile windows over a raster and the holdout unit every task sample carries.

A :class:`HoldoutUnit` says where a sample comes from: which raster or patch (``group``) and which
pixel window of it. :func:`~backend.data.tasks.split.split` uses these to hold back whole patches or
a contiguous block of tiles, never random neighbours of training tiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ..raster import Grid


@dataclass(frozen=True)
class HoldoutUnit:
    """Where one sample comes from.

    Attributes:
        group: The raster, area or patch the sample is cut from. Samples of different groups never
            overlap on the ground.
        row: Upper-left row of the sample's window in the group's pixel grid.
        col: Upper-left column.
        height: Window height in pixels.
        width: Window width in pixels.
        grid: The group's pixel grid (CRS and transform), when the dataset knows it: it places the
            window on the ground, so held-back tiles can be kept out of pretraining by footprint.
    """

    group: str
    row: int = 0
    col: int = 0
    height: int = 1
    width: int = 1
    grid: Optional[Grid] = field(default=None, compare=False, repr=False)

    def footprint(self) -> Optional[Tuple[str, Tuple[float, float, float, float]]]:
        """``(crs_wkt, (left, bottom, right, top))`` of the window, or None without a grid."""
        if self.grid is None:
            return None
        return self.grid.crs_wkt, self.grid.window_bounds(
            self.row, self.col, self.height, self.width
        )


def tile_origins(extent: int, tile_size: int, stride: int) -> List[int]:
    """Upper-left offsets of tiles along one axis, the last one flush with the far edge.

    Tiles step by ``stride``; when the extent is not a whole number of strides, one more tile is
    placed against the edge so every pixel is covered. An extent smaller than a tile gives one tile
    at 0 (reads beyond the raster are no data).
    """
    if tile_size <= 0 or stride <= 0:
        raise ValueError(f"tile_size and stride must be positive, got {tile_size} and {stride}")
    if extent <= tile_size:
        return [0]
    origins = list(range(0, extent - tile_size + 1, stride))
    if origins[-1] != extent - tile_size:
        origins.append(extent - tile_size)
    return origins
