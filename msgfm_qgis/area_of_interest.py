"""An area of interest: run a model on part of a layer instead of the whole of it.

The reference layer is cut to the area's bounding box (snapped outwards to whole pixels, on the
layer's own grid) and written as a GeoTIFF beside the run's other layer copies; the output takes
that smaller grid. With polygons, pixels outside every polygon are masked (a per-dataset mask), so
the engine skips the tiles they fill and writes nodata there.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional, Tuple

from qgis.core import (
    QgsCoordinateTransform,
    QgsGeometry,
    QgsProcessingException,
    QgsRasterLayer,
    QgsRectangle,
)

from .i18n import tr


class AreaOfInterest:
    """An extent and/or polygons, in the reference layer's CRS.

    Attributes:
        extent: the area's bounding box (layer CRS).
        polygons: WKT of the polygons (layer CRS), empty for a plain extent.
    """

    def __init__(self, extent: QgsRectangle, polygons: Optional[List[str]] = None):
        self.extent = extent
        self.polygons = polygons or []


def area_from_parameters(
    extent: Optional[QgsRectangle], source, layer: QgsRasterLayer, context
) -> Optional[AreaOfInterest]:
    """The area from an extent (already in the layer's CRS) and a polygon feature source."""
    polygons: List[str] = []
    box = extent if extent is not None and not extent.isNull() else None
    if source is not None:
        transform = QgsCoordinateTransform(source.sourceCrs(), layer.crs(), context.project())
        geometries = []
        for feature in source.getFeatures():
            geometry = QgsGeometry(feature.geometry())
            if geometry.isEmpty():
                continue
            if source.sourceCrs().isValid() and layer.crs().isValid():
                geometry.transform(transform)
            geometries.append(geometry)
        if not geometries:
            raise QgsProcessingException(
                tr(
                    "The area-of-interest polygon layer has no polygons: choose one with at "
                    "least one polygon, or leave it empty"
                )
            )
        union = QgsGeometry.unaryUnion(geometries)
        polygons = [union.asWkt()]
        bounds = union.boundingBox()
        box = bounds if box is None else box.intersect(bounds)
    if box is None:
        return None
    return AreaOfInterest(box, polygons)


def pixel_window(transform, width: int, height: int, area: QgsRectangle) -> Tuple[int, ...]:
    """(col, row, columns, rows) of the pixels that cover ``area``, snapped outwards."""
    inverse = ~transform
    xs, ys = [], []
    for x, y in (
        (area.xMinimum(), area.yMinimum()),
        (area.xMinimum(), area.yMaximum()),
        (area.xMaximum(), area.yMinimum()),
        (area.xMaximum(), area.yMaximum()),
    ):
        col, row = inverse * (x, y)
        xs.append(col)
        ys.append(row)
    left, right = max(0, math.floor(min(xs))), min(width, math.ceil(max(xs)))
    top, bottom = max(0, math.floor(min(ys))), min(height, math.ceil(max(ys)))
    return left, top, right - left, bottom - top


def cut_to_area(path: str, area: AreaOfInterest, folder: Path, label: str) -> str:
    """A GeoTIFF of the pixels of ``path`` in ``area`` (masked outside its polygons)."""
    import rasterio
    from osgeo import gdal, ogr

    with rasterio.open(path) as dataset:
        col, row, columns, rows = pixel_window(
            dataset.transform, dataset.width, dataset.height, area.extent
        )
    if columns <= 0 or rows <= 0:
        raise QgsProcessingException(
            tr("The area of interest does not overlap '{}': choose an area over the layer").format(
                label
            )
        )
    target = folder / f"area_of_interest_{len(list(folder.iterdir()))}.tif"
    options = gdal.TranslateOptions(
        format="GTiff", srcWin=[col, row, columns, rows], creationOptions=["TILED=YES"]
    )
    if gdal.Translate(str(target), path, options=options) is None:
        raise QgsProcessingException(
            tr("'{}' could not be cut to the area of interest").format(label)
        )
    if not area.polygons:
        return str(target)
    dataset = gdal.Open(str(target), gdal.GA_Update)
    mask = gdal.GetDriverByName("MEM").Create("", dataset.RasterXSize, dataset.RasterYSize, 1)
    mask.SetGeoTransform(dataset.GetGeoTransform())
    mask.SetProjection(dataset.GetProjection())
    vectors = ogr.GetDriverByName("Memory").CreateDataSource("area")
    layer = vectors.CreateLayer("area", dataset.GetSpatialRef(), ogr.wkbUnknown)
    for wkt in area.polygons:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        layer.CreateFeature(feature)
    gdal.RasterizeLayer(mask, [1], layer, burn_values=[255], options=["ALL_TOUCHED=TRUE"])
    inside = mask.GetRasterBand(1).ReadAsArray()
    if not inside.any():
        raise QgsProcessingException(
            tr("The area-of-interest polygons do not cover any pixel of '{}'").format(label)
        )
    # A per-dataset mask replaces the bands' nodata: keep every band's own mask in it.
    valid = inside > 0
    for band in range(1, dataset.RasterCount + 1):
        valid &= dataset.GetRasterBand(band).GetMaskBand().ReadAsArray() > 0
    dataset.CreateMaskBand(gdal.GMF_PER_DATASET)
    dataset.GetRasterBand(1).GetMaskBand().WriteArray(valid.astype("uint8") * 255)
    dataset = None
    return str(target)
