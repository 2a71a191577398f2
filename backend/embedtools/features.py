"""Per-pixel features of a scene: its msGFM embeddings upsampled to the pixels, and its own bands.

The encoder gives one feature vector per ``stride`` x ``stride`` pixels (32 for the bundled models):
enough to tell a forest from a field, too coarse to follow the field's edge. Each pixel's feature
vector is therefore the embedding bilinearly interpolated at the pixel's centre, followed by the
pixel's own bands normalised as the model normalises them. A classifier fitted on both learns what
the embedding says about the place and where, within a cell, the boundary runs (the effect is
measured in ``scripts/embedtools_resolution.py``).

Without an embedding raster (the tools' "bands only" choice) a pixel's features are its normalised
bands alone: the same reading, normalisation and nodata handling, and no encoder run at all.

Interpolation skips embedding cells that are nodata (the weights of the valid neighbours are
renormalised), so a pixel next to a nodata area keeps a feature vector. Everything is read in
windows: memory is bounded by the block size, whatever the scene size.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from ..export.schema import ModelMetadata
from ..inference.input_checks import check_inputs
from ..inference.inputs import RasterInput, ReferenceGrid, open_inputs
from ..inference.preprocessing import normalize_mean_std

BLOCK = 256  # pixels per side of a block of features computed at once
_MIN_WEIGHT = 1e-3  # interpolation weight below which a pixel has no valid embedding near it


class FeatureError(ValueError):
    """The embedding raster does not fit the input raster (wrong grid, stride or band count)."""


@dataclass(frozen=True)
class FeatureLayout:
    """How a pixel's feature vector is made: ``embedding`` features then ``bands`` band values."""

    embedding: int
    bands: int

    @property
    def size(self) -> int:
        return self.embedding + self.bands

    def block_weights(self, band_weight: float = 1.0) -> np.ndarray:
        """Per-feature weights for distances on standardised features.

        Each block (embedding, bands) then carries the same total variance at ``band_weight`` 1, so
        128 embedding features do not drown 12 bands; ``band_weight`` 0 uses the embedding only.
        """
        weights = np.full(self.size, 1.0 / math.sqrt(max(self.embedding, 1)), dtype=np.float32)
        if self.bands:
            weights[self.embedding :] = band_weight / math.sqrt(self.bands)
        return weights


def embedding_stride(metadata: ModelMetadata) -> int:
    """The stride (input pixels per embedding cell) of the model's embedding output."""
    for spec in metadata.outputs:
        if spec.kind == "embedding":
            return int(spec.stride)
    raise FeatureError(f"the model '{metadata.model_name}' has no embedding output")


def embedding_channels(metadata: ModelMetadata) -> int:
    """How many features the model's embedding output has."""
    for spec in metadata.outputs:
        if spec.kind == "embedding":
            return len(spec.bands)
    raise FeatureError(f"the model '{metadata.model_name}' has no embedding output")


class PixelFeatures:
    """The features of every pixel of one input raster, read block by block.

    Args:
        embedding_path: the engine's embedding GeoTIFF of ``raster`` (on its grid, coarsened by the
            model's stride); None for the pixel's bands only (no encoder).
        raster: the input raster the embeddings were computed from (its bands in model order).
        metadata: the embedding model's metadata (band normalisation, stride).
        stack: closes the opened rasters.
        include_bands: append the pixel's own normalised bands to the embedding.
        warn: called with the input checks' warnings (bands only: the engine, which checks the
            input when the encoder runs, does not run).
        run_anyway: bands only: read an input that looks out of the model's domain (values far
            from its training statistics, a doubtful band order) instead of refusing it.
    """

    def __init__(
        self,
        embedding_path: Optional[Union[str, Path]],
        raster: RasterInput,
        metadata: ModelMetadata,
        stack: ExitStack,
        include_bands: bool = True,
        warn: Optional[Callable[[str], None]] = None,
        run_anyway: bool = False,
    ):
        import rasterio

        self.grid: ReferenceGrid
        self._band_stats: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self.out_of_domain = False
        if embedding_path is None:
            # Bands only: the checks the engine runs before any tile (sensor, band order, units,
            # values far from the model's training statistics), then no encoder at all.
            note = warn or (lambda message: None)
            self.grid, opened = open_inputs([raster], metadata, stack, note, run_anyway=run_anyway)
            self.input = opened[0]
            self.spec = self.input.spec
            # Tile size 1: a pixel classifier sees no tile, so no raster is too small for it.
            self.out_of_domain = check_inputs(self.grid, opened, metadata, 1, note, run_anyway)
            self.out_of_domain = self.out_of_domain or self.input.out_of_domain
            self.stride = 1
            self.embedding = None
            self.embedding_nodata = None
            self.layout = FeatureLayout(0, len(self.spec.bands))
            return
        self.grid, opened = open_inputs([raster], metadata, stack)
        self.input = opened[0]
        self.spec = self.input.spec
        self.stride = embedding_stride(metadata)
        self.embedding = stack.enter_context(rasterio.open(embedding_path))
        expected = self.grid.cells(self.stride)
        if (self.embedding.height, self.embedding.width) != expected:
            raise FeatureError(
                f"embedding raster {Path(embedding_path).name} is {self.embedding.height} x "
                f"{self.embedding.width} cells, not {expected[0]} x {expected[1]} for a stride of "
                f"{self.stride} over {raster.describe()}"
            )
        self.embedding_nodata = self.embedding.nodata
        self.layout = FeatureLayout(
            self.embedding.count, len(self.spec.bands) if include_bands else 0
        )

    # Blocks -----------------------------------------------------------------------------------

    def blocks(self, size: int = BLOCK) -> List[Tuple[int, int, int, int]]:
        """``(row, col, height, width)`` of every block of the grid, in scan order."""
        return [
            (row, col, min(size, self.grid.height - row), min(size, self.grid.width - col))
            for row in range(0, self.grid.height, size)
            for col in range(0, self.grid.width, size)
        ]

    def block(self, row: int, col: int, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
        """Features ``(F, height, width)`` float32 and validity ``(height, width)`` of a window."""
        values, valid = self.input.read_window(row, col, height, width)
        if self.embedding is None:
            features = self._normalize(values, valid).astype(np.float32, copy=False)
            features[:, ~valid] = 0.0
            return features, valid
        rows = np.arange(row, row + height)
        cols = np.arange(col, col + width)
        cells, cell_valid, row0, col0 = self._embedding_window(rows, cols)
        wy = _interpolation_matrix(rows, self.stride, row0, cells.shape[1], self.embedding.height)
        wx = _interpolation_matrix(cols, self.stride, col0, cells.shape[2], self.embedding.width)
        weight = wy @ cell_valid.astype(np.float32) @ wx.T
        upsampled = wy @ (cells @ wx.T)  # (C, height, width)
        has_embedding = weight > _MIN_WEIGHT
        upsampled /= np.where(has_embedding, weight, 1.0)
        valid = valid & has_embedding
        parts = [upsampled]
        if self.layout.bands:
            parts.append(self._normalize(values, valid))
        features = np.concatenate(parts, axis=0).astype(np.float32, copy=False)
        features[:, ~valid] = 0.0
        return features, valid

    def at(self, rows: np.ndarray, cols: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Features ``(N, F)`` and validity ``(N,)`` of the pixels at ``rows``, ``cols``.

        Pixels are grouped by block: each block's window is read once for all its pixels.
        """
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        features = np.zeros((len(rows), self.layout.size), dtype=np.float32)
        valid = np.zeros(len(rows), dtype=bool)
        groups: Dict[Tuple[int, int], List[int]] = {}
        for index, key in enumerate(zip((rows // BLOCK).tolist(), (cols // BLOCK).tolist())):
            groups.setdefault(key, []).append(index)
        for members in groups.values():
            where = np.asarray(members)
            r, c = rows[where], cols[where]
            top, left = int(r.min()), int(c.min())
            height, width = int(r.max()) - top + 1, int(c.max()) - left + 1
            values, window_valid = self.input.read_window(top, left, height, width)
            pixel_valid = window_valid[r - top, c - left]
            if self.embedding is None:
                pixel_values = values[:, r - top, c - left][:, :, None]  # (B, n, 1)
                block = self._normalize(pixel_values, pixel_valid[:, None])[:, :, 0].T
                block[~pixel_valid] = 0.0
                features[where], valid[where] = block, pixel_valid
                continue
            cells, cell_valid, row0, col0 = self._embedding_window(
                np.arange(top, top + height), np.arange(left, left + width)
            )
            wy = _interpolation_matrix(r, self.stride, row0, cells.shape[1], self.embedding.height)
            wx = _interpolation_matrix(c, self.stride, col0, cells.shape[2], self.embedding.width)
            weight = np.einsum("nj,jk,nk->n", wy, cell_valid.astype(np.float32), wx)
            upsampled = np.einsum("nj,cjk,nk->nc", wy, cells, wx)
            has_embedding = weight > _MIN_WEIGHT
            upsampled /= np.where(has_embedding, weight, 1.0)[:, None]
            ok = pixel_valid & has_embedding
            parts = [upsampled]
            if self.layout.bands:
                pixel_values = values[:, r - top, c - left][:, :, None]  # (B, n, 1)
                parts.append(self._normalize(pixel_values, ok[:, None])[:, :, 0].T)
            block = np.concatenate(parts, axis=1)
            block[~ok] = 0.0
            features[where], valid[where] = block, ok
        return features, valid

    def sample(self, count: int, seed: int, max_blocks: int = 16) -> np.ndarray:
        """Features ``(n, F)`` of up to ``count`` valid pixels drawn at random (seeded).

        The pixels come from at most ``max_blocks`` blocks, so sampling a large scene reads a
        bounded part of it.
        """
        rng = np.random.default_rng(seed)
        blocks = self.blocks()
        chosen = rng.choice(len(blocks), size=min(max_blocks, len(blocks)), replace=False)
        per_block = max(1, count // len(chosen))
        rows, cols = [], []
        for index in sorted(chosen.tolist()):
            row, col, height, width = blocks[index]
            rows.append(rng.integers(row, row + height, per_block))
            cols.append(rng.integers(col, col + width, per_block))
        features, valid = self.at(np.concatenate(rows), np.concatenate(cols))
        return features[valid]

    # Internals --------------------------------------------------------------------------------

    def _embedding_window(
        self, rows: np.ndarray, cols: np.ndarray
    ) -> Tuple[np.ndarray, np.ndarray, int, int]:
        """The embedding cells that pixels ``rows`` x ``cols`` interpolate from, NaN-free, with
        their validity and the window's first row and column."""
        from rasterio.windows import Window

        r0, r1 = _cell_span(rows, self.stride, self.embedding.height)
        c0, c1 = _cell_span(cols, self.stride, self.embedding.width)
        window = Window(c0, r0, c1 - c0 + 1, r1 - r0 + 1)
        cells = self.embedding.read(window=window, out_dtype="float32")
        valid = np.all(np.isfinite(cells), axis=0)
        if self.embedding_nodata is not None and math.isfinite(self.embedding_nodata):
            valid &= np.all(cells != self.embedding_nodata, axis=0)
        cells = np.where(valid[None], cells, 0.0).astype(np.float32)
        return cells, valid, r0, c0

    def _normalize(self, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        if self.spec.normalization != "per_tile":
            return normalize_mean_std(values, valid, self.spec)
        # Per-tile sensors (elevation) are standardised by the scene's statistics here: one scale
        # for the whole map, so blocks join without steps.
        mean, std = self._scene_band_stats()
        out = (values - mean[:, None, None]) / std[:, None, None]
        out[:, ~valid] = 0.0
        return out.astype(np.float32)

    def _scene_band_stats(self) -> Tuple[np.ndarray, np.ndarray]:
        if self._band_stats is None:
            reader = self.input.reader
            scale = max(1, math.ceil(max(self.grid.height, self.grid.width) / 1024))
            shape = (
                len(self.input.indexes),
                max(1, self.grid.height // scale),
                max(1, self.grid.width // scale),
            )
            values = reader.read(self.input.indexes, out_shape=shape, masked=True).astype(
                np.float64
            )
            mean = np.array([float(band.mean()) for band in values])
            std = np.array([max(float(band.std()), 1e-6) for band in values])
            mean = np.nan_to_num(mean)
            self._band_stats = (
                mean.astype(np.float32),
                np.nan_to_num(std, nan=1.0).astype(np.float32),
            )
        return self._band_stats


def _cell_span(pixels: np.ndarray, stride: int, cells: int) -> Tuple[int, int]:
    """First and last embedding cell (inclusive) that the pixels interpolate from."""
    low = math.floor((int(pixels.min()) + 0.5) / stride - 0.5)
    high = math.floor((int(pixels.max()) + 0.5) / stride - 0.5) + 1
    return max(0, min(low, cells - 1)), max(0, min(high, cells - 1))


def _interpolation_matrix(
    pixels: np.ndarray, stride: int, first_cell: int, n_cells: int, total_cells: int
) -> np.ndarray:
    """``(len(pixels), n_cells)`` bilinear weights of cells ``first_cell...`` at pixel centres.

    Cell ``i`` covers pixels ``[i * stride, (i + 1) * stride)``: its centre is at pixel
    ``(i + 0.5) * stride - 0.5``. Beyond the first and last cell centres the edge cell is used.
    """
    position = (pixels.astype(np.float64) + 0.5) / stride - 0.5
    low = np.floor(position)
    fraction = (position - low).astype(np.float32)
    low = low.astype(np.int64)
    high = np.clip(low + 1, 0, total_cells - 1) - first_cell
    low = np.clip(low, 0, total_cells - 1) - first_cell
    matrix = np.zeros((len(pixels), n_cells), dtype=np.float32)
    index = np.arange(len(pixels))
    np.add.at(matrix, (index, low), 1.0 - fraction)
    np.add.at(matrix, (index, high), fraction)
    return matrix
