"""Window layout and blend weights: every pixel covered, weights summing to one across overlaps."""

from __future__ import annotations

import numpy as np
import pytest

from backend.inference.tiling import MAX_BAND_ROWS, blend_weight, overlap_pixels, plan_tiles


def accumulated_weight(width: int, height: int, tile: int, overlap: int) -> np.ndarray:
    """Sum of all tiles' blend weights over the real pixels of a width x height raster."""
    layout = plan_tiles(width, height, tile, overlap)
    weight = blend_weight(tile, overlap)
    left, top = layout.col_origins[0], layout.row_origins[0]
    total = np.zeros(
        (layout.row_origins[-1] + tile - top, layout.col_origins[-1] + tile - left), np.float64
    )
    for row in layout.row_origins:
        for col in layout.col_origins:
            total[row - top : row - top + tile, col - left : col - left + tile] += weight
    return total[-top : -top + height, -left : -left + width]


@pytest.mark.parametrize(
    ("width", "height", "tile", "overlap"),
    [(489, 443, 64, 16), (120, 120, 32, 8), (20, 20, 64, 16), (400, 400, 96, 48), (61, 61, 32, 0)],
)
def test_weights_sum_to_one_over_every_real_pixel(width, height, tile, overlap):
    # Overlap <= half the tile: the sin²/cos² ramps of neighbours are a partition of unity, and the
    # reflected margins keep the raster's own border out of any lone ramp.
    total = accumulated_weight(width, height, tile, overlap)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_wide_overlap_still_covers_every_pixel_with_positive_weight():
    total = accumulated_weight(150, 90, 32, 24)
    assert total.min() > 0.5


def test_layout_starts_in_the_margin_and_reaches_past_the_raster():
    layout = plan_tiles(489, 443, 64, 16)
    assert layout.col_origins[0] == -16 and layout.row_origins[0] == -16
    assert all(b - a == 48 for a, b in zip(layout.col_origins, layout.col_origins[1:]))
    assert layout.col_origins[-1] + 64 >= 489 + 16
    assert layout.col_origins[-1] < 489  # no window entirely in the margin
    assert layout.n_tiles == len(layout.col_origins) * len(layout.row_origins)


def test_blend_weight_is_never_zero_and_peaks_in_the_centre():
    weight = blend_weight(32, 8)
    assert weight.min() > 0
    assert weight[8:24, 8:24].min() == 1.0
    assert weight[0, 0] < weight[4, 4] < weight[8, 8]


def test_overlap_is_rounded_to_the_output_stride():
    assert overlap_pixels(64, 0.25) == 16
    assert overlap_pixels(64, 0.3, align=8) == 16  # 19 px rounded down to a multiple of 8
    assert overlap_pixels(64, 0.5, align=64) == 0  # one cell per window: no overlap possible
    with pytest.raises(ValueError, match="overlap"):
        overlap_pixels(64, 1.0)
    with pytest.raises(ValueError, match="multiple"):
        plan_tiles(100, 100, 60, 0, align=8)


@pytest.mark.parametrize(
    ("band_height", "rows", "chunk_tiles"),
    [(1, 1, 7), (72, 1, 7), (73, 2, 4), (256, 4, 2), (10_000, MAX_BAND_ROWS, 1)],
)
def test_bands_span_the_block_height_in_whole_tile_rows_with_chunks_of_the_same_area(
    band_height, rows, chunk_tiles
):
    # 96 px tiles stepping 72 px: a band holds whole tile rows, at least as many as span the
    # inputs' block height (at most MAX_BAND_ROWS), and its chunks are narrower in proportion.
    layout = plan_tiles(2048, 1000, 96, 24, chunk_width=512, band_height=band_height)
    assert layout.band_rows == rows
    assert layout.chunk_tiles == chunk_tiles
    assert rows * layout.step >= min(band_height, MAX_BAND_ROWS * layout.step)
    bands = layout.bands
    assert bands[0][0] == 0 and bands[-1][1] == len(layout.row_origins)
    assert all(a[1] == b[0] for a, b in zip(bands, bands[1:]))  # every tile row, once, in order
    assert all(stop - first == rows for first, stop in bands[:-1]) and bands[-1][1] > bands[-1][0]
