"""A polygon grid of scene-classification windows with their top labels, as a GeoPackage layer.

One square polygon per window (cell of the per-window probability raster), with the most probable
classes as fields (``top1``, ``top1_prob``, ``top2``...): what a GIS analyst filters and styles in
QGIS. Written to a temporary file and renamed, like the rasters.

The probability raster holds whole windows only (pixels past the last whole window are left out,
see ``ReferenceGrid.cells``); an input smaller than one window still gets one window, whose polygon
is cut at the input's footprint, so the layer never reaches past the input.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import InferenceError


def write_scene_grid(
    probability_raster: Union[str, Path],
    vector_path: Union[str, Path],
    class_names: List[str],
    top_k: int = 3,
    layer_name: str = "scenes",
    footprint: Optional[Sequence[Tuple[float, float]]] = None,
) -> Path:
    """Write one polygon per valid cell of ``probability_raster`` with its ``top_k`` classes.

    Args:
        probability_raster: a per-window probability GeoTIFF (one band per class).
        vector_path: the GeoPackage to write (replaced if it exists).
        class_names: one name per band.
        top_k: how many of the most probable classes become fields.
        layer_name: the layer's name in the GeoPackage.
        footprint: the input raster's corners (x, y) in order; the polygons are cut to it.
    """
    import rasterio

    vector_path = Path(vector_path)
    with rasterio.open(probability_raster) as dataset:
        probabilities = dataset.read(masked=True)
        transform, crs = dataset.transform, dataset.crs
    if probabilities.shape[0] != len(class_names):
        raise InferenceError(
            f"{Path(probability_raster).name} has {probabilities.shape[0]} bands for "
            f"{len(class_names)} classes"
        )
    top_k = max(1, min(top_k, len(class_names)))
    fd, tmp = tempfile.mkstemp(
        dir=vector_path.parent, prefix=f".{vector_path.stem}.", suffix=".partial.gpkg"
    )
    os.close(fd)
    os.unlink(tmp)  # OGR creates the GeoPackage itself
    try:
        _write(Path(tmp), layer_name, probabilities, transform, crs, class_names, top_k, footprint)
        os.replace(tmp, vector_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return vector_path


def _write(
    path: Path,
    layer_name: str,
    probabilities: Any,
    transform: Any,
    crs: Any,
    class_names: List[str],
    top_k: int,
    footprint: Optional[Sequence[Tuple[float, float]]],
) -> None:
    from osgeo import ogr, osr

    outline = _polygon(ogr, footprint) if footprint else None

    driver = ogr.GetDriverByName("GPKG")
    datasource = driver.CreateDataSource(str(path))
    if datasource is None:
        raise InferenceError(f"cannot create the GeoPackage {path.name} in {path.parent}")
    srs = None
    if crs is not None:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(crs.to_wkt())
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)  # x = easting/longitude
    layer = datasource.CreateLayer(layer_name, srs, ogr.wkbPolygon)
    for name, kind in (("row", ogr.OFTInteger), ("col", ogr.OFTInteger)):
        layer.CreateField(ogr.FieldDefn(name, kind))
    for k in range(1, top_k + 1):
        layer.CreateField(ogr.FieldDefn(f"top{k}", ogr.OFTString))
        layer.CreateField(ogr.FieldDefn(f"top{k}_prob", ogr.OFTReal))
    invalid = np.ma.getmaskarray(probabilities).any(axis=0)
    values = np.ma.getdata(probabilities)
    order = np.argsort(-values, axis=0)
    definition = layer.GetLayerDefn()
    layer.StartTransaction()
    for row, col in zip(*np.nonzero(~invalid)):
        feature = ogr.Feature(definition)
        feature.SetField("row", int(row))
        feature.SetField("col", int(col))
        for k in range(top_k):
            best = int(order[k, row, col])
            feature.SetField(f"top{k + 1}", class_names[best])
            feature.SetField(f"top{k + 1}_prob", float(values[best, row, col]))
        corners = [transform * (col + dx, row + dy) for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1))]
        polygon = _polygon(ogr, corners)
        if outline is not None and not outline.Contains(polygon):
            polygon = polygon.Intersection(outline)
        feature.SetGeometry(polygon)
        layer.CreateFeature(feature)
        feature = None
    layer.CommitTransaction()
    layer = None
    datasource = None  # closing writes the file


def _polygon(ogr: Any, corners: Sequence[Tuple[float, float]]) -> Any:
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in [*corners, corners[0]]:
        ring.AddPoint_2D(float(x), float(y))
    polygon = ogr.Geometry(ogr.wkbPolygon)
    polygon.AddGeometry(ring)
    return polygon
