"""Class labels onto an image grid: a class raster (nearest resampling) or polygons (rasterised).

Both return the class *value* per pixel of the grid (float64, NaN = unlabelled) plus the sorted
class values found; :func:`class_indices` then numbers them 0..K-1 in sorted order (strings sort
alphabetically), the order recorded with the model.

CRS comparison: two CRS definitions of the same projection can carry different EPSG codes (the GRASS
North Carolina samples: ``strata.tif`` says EPSG:3358, NAD83(HARN), the Landsat bands EPSG:32119,
NAD83; both are the same Lambert conformal conic on GRS80). :func:`same_projection` treats CRSs as
equal when rasterio says so or when their PROJ strings agree after dropping a zero datum shift
(``+towgs84=0,0,0,...``), so a label raster on the image's pixel grid (same transform and size) is
read as it is, without a resampling that could shift class boundaries.

Polygon layers: a file may hold several (a GeoPackage). The layer is named on its own or in QGIS's
OGR source form ``path|layername=NAME`` (or ``path|layerid=N``), which is what a QGIS vector layer
reports as its source; :func:`polygon_layer_source` reads both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..raster import Grid

# Two transforms differing by less than this fraction of a pixel describe the same grid.
_GRID_TOLERANCE = 1e-6


def _proj_tokens(wkt: str) -> List[str]:
    from osgeo import osr

    srs = osr.SpatialReference()
    if srs.ImportFromWkt(wkt) != 0:
        return [wkt]
    tokens = []
    for token in srs.ExportToProj4().split():
        if token in ("+no_defs", "+type=crs"):
            continue
        if token.startswith("+towgs84=") and all(
            float(v) == 0.0 for v in token.split("=", 1)[1].split(",")
        ):
            continue
        tokens.append(token)
    return sorted(tokens)


def same_projection(wkt_a: str, wkt_b: str) -> bool:
    """True when two CRS definitions describe the same projection (see the module docstring)."""
    from rasterio.crs import CRS

    if CRS.from_wkt(wkt_a) == CRS.from_wkt(wkt_b):
        return True
    return _proj_tokens(wkt_a) == _proj_tokens(wkt_b)


def on_grid(dataset: Any, grid: Grid) -> bool:
    """True when an open rasterio dataset lies exactly on ``grid`` (size, transform, projection)."""
    if (dataset.width, dataset.height) != (grid.width, grid.height) or dataset.crs is None:
        return False
    pixel = max(abs(grid.transform[0]), abs(grid.transform[4]))
    source = tuple(dataset.transform)[:6]
    if any(abs(source[i] - grid.transform[i]) > _GRID_TOLERANCE * pixel for i in range(6)):
        return False
    return same_projection(dataset.crs.to_wkt(), grid.crs_wkt)


def polygon_layer_source(
    source: Union[str, Path], layer: Optional[Union[str, int]] = None
) -> Tuple[str, Optional[Union[str, int]]]:
    """The file and layer of a polygon source: ``path`` or QGIS's ``path|layername=NAME``.

    Args:
        source: A vector file, or QGIS's OGR layer source (``|layername=NAME`` or
            ``|layerid=N``, the layer's index in the file).
        layer: A layer name (or index) given on its own.

    Returns:
        ``(path, layer)``; ``layer`` is None when neither names one (the file's first layer).

    Raises:
        ValueError: The source carries a part other than the layer (e.g. a QGIS ``subset``
            filter, which would be silently lost), or names another layer than ``layer``.
    """
    path, *parts = str(source).split("|")
    named: Optional[Union[str, int]] = None
    for part in parts:
        key, _, value = part.partition("=")
        key = key.strip().lower()
        if key == "layername" and value:
            named = value
        elif key == "layerid" and value.strip().isdigit():
            named = int(value)
        elif key == "subset":
            raise ValueError(
                f"polygon source {source!r} carries a QGIS filter ({part}): the training data "
                "cannot apply it; save the filtered features as their own layer (Export > Save "
                "Selected Features As...) and use that layer"
            )
        else:
            raise ValueError(
                f"polygon source {source!r}: {part!r} is not understood; give the file, "
                "optionally as path|layername=NAME"
            )
    if layer is not None and named is not None and str(layer) != str(named):
        raise ValueError(
            f"polygon source {source!r} names layer {named!r} but polygon_layer is {layer!r}: "
            "give the layer once"
        )
    return path, layer if layer is not None else named


def read_class_raster(path: Union[str, Path], grid: Grid, band: int = 1) -> np.ndarray:
    """Class values of a raster on ``grid`` (float64 (H, W)); nodata and uncovered pixels are NaN.

    A raster on the grid is read directly; any other is reprojected with nearest resampling
    (classes must not be averaged).
    """
    import rasterio
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from rasterio.transform import Affine
    from rasterio.warp import reproject

    with rasterio.open(path) as dataset:
        if not 1 <= band <= dataset.count:
            raise ValueError(f"{path}: band {band} requested but the file has {dataset.count}")
        nodata = dataset.nodata
        if on_grid(dataset, grid):
            values = dataset.read(band).astype(np.float64)
        else:
            if dataset.crs is None:
                raise ValueError(
                    f"label raster {path} has no CRS and is not on the image grid; assign its CRS "
                    "(gdal_edit.py -a_srs) or resample it onto the image"
                )
            values = np.full((grid.height, grid.width), np.nan, dtype=np.float64)
            reproject(
                source=rasterio.band(dataset, band),
                destination=values,
                src_nodata=nodata,
                dst_transform=Affine(*grid.transform),
                dst_crs=CRS.from_wkt(grid.crs_wkt),
                dst_nodata=np.nan,
                resampling=Resampling.nearest,
            )
    if nodata is not None and not np.isnan(nodata):
        values[values == nodata] = np.nan
    return values


def rasterize_polygons(
    path: Union[str, Path],
    class_field: str,
    grid: Grid,
    layer: Optional[Union[str, int]] = None,
    all_touched: bool = False,
) -> Tuple[np.ndarray, List[Any]]:
    """Burn polygons' class field onto ``grid``.

    Features are reprojected to the grid's CRS when theirs differs. A pixel takes the class of the
    polygon that contains its centre (or that it touches, with ``all_touched``); where polygons
    overlap the later feature wins. Features with an empty class field are skipped.

    Args:
        path: GeoPackage, Shapefile or any OGR vector source; QGIS's ``path|layername=NAME``
            form names the layer too (see :func:`polygon_layer_source`).
        class_field: Attribute holding the class (string or integer).
        grid: The image grid.
        layer: Layer name, or index in the file (default: the first layer).
        all_touched: Burn every pixel a polygon touches.

    Returns:
        ``(values, classes)``: float64 (H, W) index into ``classes`` (NaN outside polygons) and the
        sorted class values of all features.
    """
    from osgeo import gdal, ogr, osr

    path, layer = polygon_layer_source(path, layer)
    source = ogr.Open(str(path))
    if source is None:
        raise FileNotFoundError(f"cannot open the polygon layer {path} (GeoPackage, Shapefile...)")
    vector = _vector_layer(source, path, layer)
    definition = vector.GetLayerDefn()
    fields = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
    if class_field not in fields:
        raise ValueError(
            f"{path}: no class field {class_field!r}; its fields are {', '.join(fields)}"
        )
    features = []
    for feature in vector:
        value, geometry = feature.GetField(class_field), feature.GetGeometryRef()
        # Clone while the feature lives: its geometry is freed with it (GDAL segfaults otherwise).
        if value is not None and geometry is not None:
            features.append((value, geometry.Clone()))
    if not features:
        raise ValueError(f"{path}: no feature has a value in {class_field!r}")
    classes = sorted({value for value, _ in features})
    target_srs = osr.SpatialReference()
    target_srs.ImportFromWkt(grid.crs_wkt)
    target_srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    source_srs = vector.GetSpatialRef()
    transform = None
    if source_srs is not None and not same_projection(source_srs.ExportToWkt(), grid.crs_wkt):
        source_srs = source_srs.Clone()
        source_srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        transform = osr.CoordinateTransformation(source_srs, target_srs)
    memory = ogr.GetDriverByName("Memory").CreateDataSource("labels")
    burn_layer = memory.CreateLayer("labels", target_srs, ogr.wkbUnknown)
    burn_layer.CreateField(ogr.FieldDefn("class_id", ogr.OFTInteger))
    for value, geometry in features:
        if transform is not None and geometry.Transform(transform) != 0:
            raise ValueError(f"{path}: a polygon could not be reprojected to the image CRS")
        feature = ogr.Feature(burn_layer.GetLayerDefn())
        feature.SetGeometry(geometry)
        # 0 is the background, so class k burns k + 1.
        feature.SetField("class_id", classes.index(value) + 1)
        burn_layer.CreateFeature(feature)
    raster = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, gdal.GDT_Int32)
    raster.SetGeoTransform(_gdal_transform(grid.transform))
    raster.SetProjection(grid.crs_wkt)
    options = ["ATTRIBUTE=class_id"] + (["ALL_TOUCHED=TRUE"] if all_touched else [])
    if gdal.RasterizeLayer(raster, [1], burn_layer, options=options) != 0:
        raise RuntimeError(f"rasterising {path} failed: {gdal.GetLastErrorMsg()}")
    burned = raster.GetRasterBand(1).ReadAsArray().astype(np.float64) - 1.0
    burned[burned < 0] = np.nan
    return burned, classes


def _vector_layer(source: Any, path: str, layer: Optional[Union[str, int]]) -> Any:
    """The named (or indexed, or first) layer of an open OGR source; a missing one lists them."""
    if layer is None:
        vector = source.GetLayer(0)
    elif isinstance(layer, int):
        vector = source.GetLayer(layer) if 0 <= layer < source.GetLayerCount() else None
    else:
        vector = source.GetLayerByName(layer)
    if vector is None:
        names = [source.GetLayer(i).GetName() for i in range(source.GetLayerCount())]
        raise ValueError(
            f"{path}: no layer {layer!r}; its layers are {', '.join(names) or 'none'}: set "
            "polygon_layer (or path|layername=NAME) to one of them"
        )
    return vector


def _gdal_transform(transform: Sequence[float]) -> Tuple[float, ...]:
    a, b, c, d, e, f = transform
    return (c, a, b, f, d, e)


def class_indices(values: np.ndarray, classes: Sequence[Any], ignore_index: int) -> np.ndarray:
    """int64 class indexes: the position of each pixel's value in ``classes``, else ``ignore_index``."""
    out = np.full(values.shape, ignore_index, dtype=np.int64)
    for index, value in enumerate(classes):
        out[values == value] = index
    return out
