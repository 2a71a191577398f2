"""A colour preview of an embedding raster: its first three principal components as a 3-band raster.

An embedding has dozens to hundreds of bands; showing bands 1-3 as red, green and blue shows three
arbitrary features. The principal components of all features carry most of their variation, so the
preview shows where the embedding sees different things. Principal axes come from a sample of valid
cells (at most ``sample`` of them); every cell is then projected block by block, so memory stays
bounded on any raster size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Tuple, Union

import numpy as np

from ..files import output_tempfile
from ..run_scratch import owner_tag
from .errors import InferenceError

COMPONENTS = 3
BLOCK_ROWS = 256


def write_pca_preview(
    embedding: Union[str, Path], out_path: Union[str, Path], sample: int = 50000
) -> Path:
    """Write the first three principal components of ``embedding`` to ``out_path`` (GeoTIFF).

    Nodata cells of the embedding stay nodata (NaN). Returns ``out_path``.
    """
    import rasterio

    out_path = Path(out_path)
    with rasterio.open(embedding) as source:
        if source.count < COMPONENTS:
            raise InferenceError(
                f"{Path(embedding).name} has {source.count} bands: a preview needs at least "
                f"{COMPONENTS}"
            )
        mean, axes = _principal_axes(source, sample)
        profile = {
            "driver": "GTiff",
            "width": source.width,
            "height": source.height,
            "count": COMPONENTS,
            "dtype": "float32",
            "nodata": float("nan"),
            "transform": source.transform,
            "tiled": True,
            "compress": "deflate",
        }
        if source.crs is not None:
            profile["crs"] = source.crs
        prefix = f".{out_path.stem}.{owner_tag()}."
        handle, temp = output_tempfile(out_path.parent, prefix, ".partial.tif")
        os.close(handle)
        try:
            with rasterio.open(temp, "w", **profile) as target:
                for index in range(COMPONENTS):
                    target.set_band_description(index + 1, f"PC{index + 1}")
                for window, values, valid in _blocks(source):
                    projected = np.full((COMPONENTS, *valid.shape), np.nan, dtype=np.float32)
                    cells = values[:, valid].T - mean
                    projected[:, valid] = (cells @ axes).T
                    target.write(projected, window=window)
            os.replace(temp, out_path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
    return out_path


def _blocks(source) -> Iterator[Tuple[object, np.ndarray, np.ndarray]]:
    from rasterio.windows import Window

    for row in range(0, source.height, BLOCK_ROWS):
        window = Window(0, row, source.width, min(BLOCK_ROWS, source.height - row))
        values = source.read(window=window, out_dtype="float64")
        valid = np.all(source.read_masks(window=window) > 0, axis=0)
        valid &= np.all(np.isfinite(values), axis=0)
        yield window, values, valid


def _principal_axes(source, sample: int) -> Tuple[np.ndarray, np.ndarray]:
    """Mean (bands,) and the first three principal axes (bands, 3) of a sample of valid cells."""
    step = max(1, int(np.sqrt(source.width * source.height / max(sample, 1))))
    cells = []
    for _, values, valid in _blocks(source):
        rows = valid[::step, ::step]
        cells.append(values[:, ::step, ::step][:, rows].T)
    data = np.concatenate(cells) if cells else np.empty((0, source.count))
    if len(data) < 2:
        raise InferenceError(f"{source.name} has too few valid cells for a preview")
    mean = data.mean(axis=0)
    # Right singular vectors of the centred sample are the principal axes, largest first.
    _, _, vt = np.linalg.svd(data - mean, full_matrices=False)
    axes = vt[:COMPONENTS].T
    # A sign convention (largest loading positive) keeps colours stable between runs.
    signs = np.sign(axes[np.argmax(np.abs(axes), axis=0), range(COMPONENTS)])
    return mean, axes * np.where(signs == 0, 1, signs)
