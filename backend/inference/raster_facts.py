"""What a raster says about itself, gathered for :mod:`backend.sensor_resolver`.

Band names, centre wavelengths and the product's sensor come from :mod:`backend.products` (which
reads descriptions, band metadata and product metadata); this module adds a sample of valid pixels:
each band's median, spread and roughness. The sample is a few small windows spread over the
raster, so it costs the same on any raster size.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..sensor_resolver import RasterBand, RasterFacts

SAMPLE_WINDOW = 96  # side of each sampled window, in pixels
SAMPLE_GRID = 3  # windows per axis
MIN_SAMPLE = 16  # fewer valid pixels than this: no statistics


def read_facts(
    source: Any, label: str, name_hints: Sequence[str] = (), sample: bool = True
) -> RasterFacts:
    """The facts of a raster as :func:`backend.products.harmonise` delivered it.

    Args:
        source: the :class:`backend.products.HarmonisedRaster` (its path, band names, centre
            wavelengths and the sensor its product's metadata proves).
        label: how messages name the raster.
        name_hints: layer names beside the file name, whose words may name a sensor.
        sample: read a sample of values (medians, spreads and roughness per band).
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    stats = None
    if sample:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(source.path) as dataset:
                stats = _sample_stats(dataset)
                dtype = dataset.dtypes[0]
    else:
        dtype = ""
    bands = tuple(
        RasterBand(name=name or "", wavelength_nm=wave)
        for name, wave in zip(source.band_names, source.wavelengths_nm)
    )
    hints = tuple(dict.fromkeys([*name_hints, Path(str(source.path)).name]))
    return RasterFacts(
        label=label,
        bands=bands,
        dtype=dtype,
        name_hints=hints,
        sensor=source.sensor,
        medians=stats[0] if stats else None,
        spreads=stats[1] if stats else None,
        roughness=stats[2] if stats else None,
    )


def _spread(size: int, window: int) -> List[int]:
    if size <= window:
        return [0]
    return sorted({round(k * (size - window) / (SAMPLE_GRID - 1)) for k in range(SAMPLE_GRID)})


Stats = Tuple[Tuple[float, ...], Tuple[float, ...], Optional[Tuple[float, ...]]]


def _sample_stats(dataset: Any) -> Optional[Stats]:
    """Per band: median, standard deviation and roughness (mean absolute difference of
    horizontal neighbours, both valid, over the standard deviation) of the sampled pixels."""
    from rasterio.windows import Window

    h, w = min(SAMPLE_WINDOW, dataset.height), min(SAMPLE_WINDOW, dataset.width)
    pixels = []
    steps, step_pairs = [], 0
    for row in _spread(dataset.height, h):
        for col in _spread(dataset.width, w):
            window = Window(col, row, w, h)
            if len(set(dataset.dtypes)) == 1:
                values = dataset.read(window=window, out_dtype="float32", masked=True)
            else:  # bands of different types (a VRT stack): rasterio reads them one by one
                values = np.ma.stack(
                    [
                        dataset.read(k, window=window, out_dtype="float32", masked=True)
                        for k in range(1, dataset.count + 1)
                    ]
                )
            valid = ~np.ma.getmaskarray(values).any(axis=0)
            data = np.ma.getdata(values)
            valid &= np.isfinite(data).all(axis=0)
            pixels.append(data[:, valid])
            pairs = valid[:, 1:] & valid[:, :-1]
            if pairs.any():
                steps.append(np.abs(np.diff(data, axis=2))[:, pairs].sum(axis=1))
                step_pairs += int(pairs.sum())
    joined = np.concatenate(pixels, axis=1)
    if joined.shape[1] < MIN_SAMPLE:
        return None
    medians = tuple(float(v) for v in np.median(joined, axis=1))
    std = np.std(joined, axis=1)
    spreads = tuple(float(v) for v in std)
    roughness = None
    if step_pairs >= MIN_SAMPLE:
        mean_step = np.sum(steps, axis=0) / step_pairs
        roughness = tuple(float(v) for v in mean_step / np.maximum(std, 1e-12))
    return medians, spreads, roughness
