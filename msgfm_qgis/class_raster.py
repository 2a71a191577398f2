"""A class raster (most probable class per cell) derived from a model's probability raster.

Segmentation and scene-classification models may output per-class probabilities only; the class map a
GIS analyst wants is their argmax, written as a paletted uint8 GeoTIFF with the model's class values,
colours and names, on the probability raster's grid. Argmax of the blended probabilities is what the
engine does for ``class`` outputs, so both kinds of model give the same kind of map.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence

from backend.files import output_tempfile

# Rows processed at once: memory stays bounded on large rasters.
_BLOCK_ROWS = 256


def class_nodata(probability_nodata: Optional[float], class_values: Sequence[int]) -> int:
    """The class raster's nodata: the probability raster's when it is a free uint8 value, else the
    highest value no class uses (as the engine does for ``class`` outputs)."""
    used = set(class_values)
    if (
        probability_nodata is not None
        and math.isfinite(probability_nodata)
        and float(probability_nodata).is_integer()
        and 0 <= probability_nodata <= 255
        and int(probability_nodata) not in used
    ):
        return int(probability_nodata)
    return next(v for v in range(255, -1, -1) if v not in used)


def write_class_raster(probabilities: str, out_path: str, classes: Sequence[Any]) -> str:
    """Write the argmax of ``probabilities`` (one band per class, in ``classes`` order) to ``out_path``.

    Args:
        probabilities: a probability GeoTIFF written by the engine.
        out_path: the class GeoTIFF to write (replaced atomically).
        classes: the model's :class:`ClassInfo` entries (value, name, color), one per band.
    """
    import numpy as np  # not at module level: registering the plugin must not import numpy
    from osgeo import gdal

    source = gdal.Open(probabilities)
    if source is None or source.RasterCount != len(classes):
        raise RuntimeError(f"{probabilities} does not hold one probability band per class")
    width, height = source.RasterXSize, source.RasterYSize
    has_nodata = source.GetRasterBand(1).GetNoDataValue()
    values = np.array([c.value for c in classes], dtype=np.uint8)
    nodata = class_nodata(has_nodata, values.tolist())
    out = Path(out_path)
    handle, temp_name = output_tempfile(out.parent, f".{out.stem}.", ".tif")
    os.close(handle)
    temp = Path(temp_name)
    try:
        driver = gdal.GetDriverByName("GTiff")
        target = driver.Create(
            str(temp),
            width,
            height,
            1,
            gdal.GDT_Byte,
            options=["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=2"],
        )
        target.SetGeoTransform(source.GetGeoTransform())
        target.SetProjection(source.GetProjection())
        band = target.GetRasterBand(1)
        band.SetNoDataValue(nodata)
        band.SetDescription("class")
        table = gdal.ColorTable()
        names = [""] * (int(values.max()) + 1)
        for info in classes:
            rgb = int(info.color[1:], 16)
            table.SetColorEntry(info.value, ((rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255, 255))
            names[info.value] = info.name
        band.SetColorTable(table)
        band.SetCategoryNames(names)
        for row in range(0, height, _BLOCK_ROWS):
            rows = min(_BLOCK_ROWS, height - row)
            scores = source.ReadAsArray(0, row, width, rows).reshape(len(classes), rows, width)
            valid = np.all(np.isfinite(scores), axis=0)
            if has_nodata is not None and math.isfinite(has_nodata):
                valid &= np.all(scores != has_nodata, axis=0)
            best = values[np.argmax(np.where(np.isfinite(scores), scores, -np.inf), axis=0)]
            best[~valid] = nodata
            band.WriteArray(best, 0, row)
        band = None
        target = None  # closing flushes the raster and its .aux.xml (category names)
        _replace(temp, out)
    finally:
        for leftover in (temp, _aux(temp)):
            if leftover.exists():
                leftover.unlink()
        source = None
    return str(out)


def _aux(path: Path) -> Path:
    return path.with_name(path.name + ".aux.xml")


def _replace(temp: Path, out: Path) -> None:
    os.replace(temp, out)
    if _aux(temp).exists():
        os.replace(_aux(temp), _aux(out))
    elif _aux(out).exists():
        _aux(out).unlink()  # a stale legend would describe other classes
