"""What a raster file says about itself, read for :mod:`backend.sensor_resolver`.

Band names come from the band descriptions (else the band metadata ``BANDNAME``), centre
wavelengths from the metadata conventions GDAL drivers and tools write (``CENTRAL_WAVELENGTH_UM``
of GDAL's IMAGERY domain, ``WAVELENGTH`` + ``WAVELENGTH_UNIT`` of the SENTINEL2 driver, ENVI's
``wavelength``), and a sample of valid pixels gives each band's median and spread. The sample is a
few small windows spread over the raster, so it costs the same on any raster size.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..sensor_resolver import RasterBand, RasterFacts

SAMPLE_WINDOW = 96  # side of each sampled window, in pixels
SAMPLE_GRID = 3  # windows per axis
MIN_SAMPLE = 16  # fewer valid pixels than this: no statistics


def read_facts(
    path: Union[str, Path],
    label: str,
    name_hints: Sequence[str] = (),
    band_names: Optional[Sequence[str]] = None,
    wavelengths_nm: Optional[Sequence[Optional[float]]] = None,
    sensor: Optional[str] = None,
    sample: bool = True,
) -> RasterFacts:
    """Read the facts of the raster at ``path``.

    Args:
        path: anything GDAL opens.
        label: how messages name the raster.
        name_hints: layer names beside the file name, whose words may name a sensor.
        band_names, wavelengths_nm: what a product reader already knows per band (overrides the
            file's descriptions and metadata where given).
        sensor: the registry sensor the product's metadata proves.
        sample: read a sample of values (medians and spreads per band).
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as dataset:
            names = list(band_names) if band_names is not None else _names(dataset)
            waves = list(wavelengths_nm) if wavelengths_nm is not None else _wavelengths(dataset)
            stats = _sample_stats(dataset) if sample else None
            dtype = dataset.dtypes[0]
    bands = tuple(
        RasterBand(name=names[k] or "", wavelength_nm=waves[k]) for k in range(len(names))
    )
    hints = tuple(dict.fromkeys([*name_hints, Path(str(path)).name]))
    return RasterFacts(
        label=label,
        bands=bands,
        dtype=dtype,
        name_hints=hints,
        sensor=sensor,
        medians=stats[0] if stats else None,
        spreads=stats[1] if stats else None,
        roughness=stats[2] if stats else None,
    )


def _names(dataset: Any) -> List[str]:
    names = []
    for index, description in enumerate(dataset.descriptions, start=1):
        if not description:
            tags = dataset.tags(index)
            description = tags.get("BANDNAME") or tags.get("band_name") or ""
        names.append(description or "")
    return names


_UNIT_FACTORS = {"nm": 1.0, "nanometers": 1.0, "um": 1000.0, "µm": 1000.0, "micrometers": 1000.0}


def _to_nm(value: str, unit: str) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    factor = _UNIT_FACTORS.get(unit.strip().lower()) if unit else None
    if factor is None:  # no unit: micrometres are below 20, nanometres above
        factor = 1000.0 if number < 20 else 1.0
    return number * factor


def _wavelengths(dataset: Any) -> List[Optional[float]]:
    waves: List[Optional[float]] = []
    for index in range(1, dataset.count + 1):
        tags = dict(dataset.tags(index))
        with contextlib.suppress(Exception):  # a driver without the domain
            tags.update(dataset.tags(index, ns="IMAGERY"))
        wave = None
        if "CENTRAL_WAVELENGTH_UM" in tags:
            wave = _to_nm(tags["CENTRAL_WAVELENGTH_UM"], "um")
        elif "WAVELENGTH" in tags:
            unit = tags.get("WAVELENGTH_UNIT") or tags.get("WAVELENGTH_UNITS") or ""
            wave = _to_nm(tags["WAVELENGTH"], unit)
        elif "wavelength" in tags:
            wave = _to_nm(tags["wavelength"], tags.get("wavelength_units", ""))
        waves.append(wave)
    if all(w is None for w in waves):  # ENVI: one list for the dataset
        envi = dataset.tags(ns="ENVI") if "ENVI" in (dataset.tag_namespaces() or []) else {}
        listed = envi.get("wavelength")
        if listed:
            values = [v for v in re.split(r"[{},\s]+", listed) if v]
            unit = envi.get("wavelength_units", "")
            if len(values) == dataset.count:
                waves = [_to_nm(v, unit) for v in values]
    return waves


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
