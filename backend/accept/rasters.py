"""Reading and writing the suite's rasters: scene stacks, degraded pairs, outputs on a grid."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


def read(path: Path) -> Tuple[np.ndarray, Dict]:
    """``(bands float64 with NaN for nodata, profile)`` of a raster."""
    import rasterio

    with rasterio.open(path) as dataset:
        data = dataset.read(masked=True).astype(np.float64).filled(np.nan)
        return data, dict(dataset.profile)


def write(path: Path, data: np.ndarray, profile: Dict, names: Sequence[str] = ()) -> Path:
    """A GeoTIFF of ``data`` (bands, H, W) on the grid of ``profile`` (crs, transform)."""
    import rasterio

    out = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": data.dtype.name,
        "crs": profile["crs"],
        "transform": profile["transform"],
    }
    if np.issubdtype(data.dtype, np.floating):
        out["nodata"] = np.nan
    with rasterio.open(path, "w", **out) as dataset:
        dataset.write(data)
        for index, name in enumerate(names, start=1):
            dataset.set_band_description(index, name)
    return path


def stack(paths: Sequence[Path], out: Path, names: Sequence[str]) -> Path:
    """One multiband GeoTIFF (float32) of single-band files on one grid."""
    bands: List[np.ndarray] = []
    profile: Optional[Dict] = None
    for path in paths:
        data, this = read(path)
        bands.append(data[0])
        profile = profile or this
    return write(out, np.stack(bands).astype(np.float32), profile, names)


def block_mean(data: np.ndarray, factor: int) -> np.ndarray:
    """``(bands, H // f, W // f)`` means of ``factor`` x ``factor`` blocks (a sensor's coarser
    pixel, the degradation of Wald's protocol)."""
    bands, height, width = data.shape
    height, width = height // factor * factor, width // factor * factor
    blocks = data[:, :height, :width].reshape(
        bands, height // factor, factor, width // factor, factor
    )
    return blocks.mean(axis=(2, 4))


def coarser_profile(profile: Dict, factor: int) -> Dict:
    """The grid of :func:`block_mean`'s output."""
    from rasterio import Affine

    return {**profile, "transform": profile["transform"] * Affine.scale(factor)}


def onto_grid(path: Path, profile: Dict, band: int = 1) -> np.ndarray:
    """Band ``band`` of ``path`` read onto the grid of ``profile`` by nearest neighbour (a coarse
    class raster onto the input's pixels); NaN where it has no value."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    target = np.full((profile["height"], profile["width"]), np.nan, dtype=np.float64)
    with rasterio.open(path) as dataset:
        source = dataset.read(band, masked=True).astype(np.float64).filled(np.nan)
        reproject(
            source,
            target,
            src_transform=dataset.transform,
            src_crs=dataset.crs,
            dst_transform=profile["transform"],
            dst_crs=profile["crs"],
            src_nodata=np.nan,
            dst_nodata=np.nan,
            resampling=Resampling.nearest,
        )
    return target


def write_points(path: Path, profile: Dict, rows, cols, labels, field: str = "cover") -> Path:
    """Labelled points at pixel centres as a GeoPackage (the examples a user digitises)."""
    from osgeo import ogr, osr

    driver = ogr.GetDriverByName("GPKG")
    if path.exists():
        driver.DeleteDataSource(str(path))
    source = driver.CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromWkt(profile["crs"].to_wkt())
    layer = source.CreateLayer(path.stem, srs, ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn(field, ogr.OFTString))
    for row, col, label in zip(rows, cols, labels):
        x, y = profile["transform"] * (float(col) + 0.5, float(row) + 0.5)
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField(field, str(label))
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x} {y})"))
        layer.CreateFeature(feature)
    source = None
    return path
