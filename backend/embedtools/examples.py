"""The pixels under labelled example geometries (points or polygons) on a raster grid.

Geometries come as GeoJSON-like mappings in the grid's CRS (the plugin transforms the layer's
features). A point marks the pixel it falls in; a polygon the pixels whose centres it contains (all
pixels it touches when it is smaller than a pixel). Each polygon is rasterised in its own bounding
window, so a few large polygons never need a scene-sized mask, and at most ``max_pixels`` of its
pixels (seeded) are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..inference.inputs import ReferenceGrid


@dataclass
class Example:
    """One labelled geometry: its label (class field value), an id for messages, the geometry."""

    label: Any
    ident: str
    geometry: Mapping[str, Any]


@dataclass
class ExamplePixels:
    """The pixels of one example: ``rows``, ``cols`` (may be empty when it lies off the grid)."""

    example: Example
    rows: np.ndarray
    cols: np.ndarray


def _coordinates(geometry: Mapping[str, Any]) -> Iterator[Tuple[float, float]]:
    if geometry.get("type") == "GeometryCollection":
        for part in geometry.get("geometries", []):
            yield from _coordinates(part)
        return

    def walk(node: Any) -> Iterator[Tuple[float, float]]:
        if isinstance(node, (list, tuple)) and node and isinstance(node[0], (int, float)):
            yield float(node[0]), float(node[1])
        elif isinstance(node, (list, tuple)):
            for item in node:
                yield from walk(item)

    yield from walk(geometry.get("coordinates", []))


def _pixel_window(
    geometry: Mapping[str, Any], grid: ReferenceGrid
) -> Optional[Tuple[int, int, int, int]]:
    """``(row, col, height, width)`` of the grid pixels the geometry's bounds cover, or None."""
    points = list(_coordinates(geometry))
    if not points:
        return None
    inverse = ~grid.transform
    pixels = [inverse * point for point in points]
    cols = [p[0] for p in pixels]
    rows = [p[1] for p in pixels]
    left, right = max(0, math.floor(min(cols))), min(grid.width, math.floor(max(cols)) + 1)
    top, bottom = max(0, math.floor(min(rows))), min(grid.height, math.floor(max(rows)) + 1)
    if right <= left or bottom <= top:
        return None
    return top, left, bottom - top, right - left


def example_pixels(
    examples: Sequence[Example], grid: ReferenceGrid, max_pixels: int = 400, seed: int = 0
) -> List[ExamplePixels]:
    """The grid pixels of each example (at most ``max_pixels`` each, seeded)."""
    from affine import Affine
    from rasterio.features import rasterize

    rng = np.random.default_rng(seed)
    found = []
    for example in examples:
        window = _pixel_window(example.geometry, grid)
        rows = cols = np.zeros(0, dtype=np.int64)
        if window is not None:
            top, left, height, width = window
            transform = grid.transform * Affine.translation(left, top)
            mask = np.zeros((height, width), dtype=np.uint8)
            for all_touched in (False, True):
                mask = rasterize(
                    [(example.geometry, 1)],
                    out_shape=(height, width),
                    transform=transform,
                    fill=0,
                    all_touched=all_touched,
                    dtype="uint8",
                )
                if mask.any():
                    break
            rows, cols = np.nonzero(mask)
            if len(rows) > max_pixels:
                keep = np.sort(rng.choice(len(rows), size=max_pixels, replace=False))
                rows, cols = rows[keep], cols[keep]
            rows, cols = rows + top, cols + left
        found.append(ExamplePixels(example, rows.astype(np.int64), cols.astype(np.int64)))
    return found
