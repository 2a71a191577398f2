"""Where an input raster lies: its geotransform and CRS, and what to do when it has none.

- A raster without a geotransform (a PNG, a TIFF without one): GDAL reports the identity transform,
  whose +1 pixel height puts row 0 at the bottom. QGIS shows such a raster in pixel coordinates
  with y pointing down (x from 0 to width, y from -height to 0), so the output gets that north-up
  transform and lies exactly on its input in QGIS. The run says so.
- A raster without a CRS: the output has none either; the run says so. A netCDF whose CRS sits in
  a grid-mapping variable ``crs`` (``spatial_ref``, ``crs_wkt``, ``epsg_code``) that its data
  variable does not reference, or in a global ``crs`` attribute, is read through that attribute,
  and the run says which one it used.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, Tuple

Warn = Callable[[str], None]

# Attributes of a netCDF grid-mapping variable that hold a whole CRS, in order of preference.
_CRS_ATTRIBUTES = ("crs_wkt", "spatial_ref", "epsg_code", "proj4", "proj4text", "proj4_params")


def has_geotransform(dataset: Any) -> bool:
    """Whether GDAL found a geotransform (rasterio reports the identity when there is none)."""
    from affine import Affine

    return not (dataset.transform == Affine.identity() and dataset.crs is None)


def north_up_transform(dataset: Any) -> Any:
    """The transform the output is written with: the raster's, or pixel coordinates north-up."""
    from affine import Affine

    if has_geotransform(dataset):
        return dataset.transform
    return Affine(1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def describe_georeferencing(dataset: Any, label: str, warn: Optional[Warn]) -> None:
    """Warn about a reference raster without a geotransform (once per run)."""
    if warn is None or has_geotransform(dataset):
        return
    gcps = dataset.gcps[0] if hasattr(dataset, "gcps") else []
    how = (
        f"is georeferenced only by {len(gcps)} ground control points, which msGFM does not use "
        "(warp it first: Raster > Projections > Warp, or gdalwarp)"
        if gcps
        else "has no georeferencing"
    )
    warn(
        f"{label} {how}: the output is placed in pixel coordinates, north up (x 0 to "
        f"{dataset.width}, y -{dataset.height} to 0), exactly over the input as QGIS shows it; "
        "georeference the input to place the output on a map"
    )


def raster_crs(dataset: Any, label: str, warn: Optional[Warn]) -> Any:
    """The raster's CRS: GDAL's, else one found in its netCDF attributes; None with a warning."""
    if dataset.crs is not None:
        return dataset.crs
    if not has_geotransform(dataset):
        return None  # pixel coordinates: describe_georeferencing has said it
    found, unreadable = _netcdf_crs(dataset)
    if found is not None:
        crs, where = found
        _say(warn, f"{label}: GDAL found no CRS; using {_name(crs)} from the netCDF {where}")
        return crs
    if unreadable:
        where, text = unreadable
        _say(
            warn,
            f"{label} has no CRS GDAL recognises and its netCDF {where} ({_short(text)}) is not "
            "a CRS msGFM can read: the output has no CRS either; assign one (gdal_edit.py -a_srs "
            "EPSG:code, or Layer Properties > Source in QGIS)",
        )
        return None
    _say(
        warn,
        f"{label} has no coordinate reference system: the output has none either and will not "
        "line up with other layers; assign one (gdal_edit.py -a_srs EPSG:code, or Layer "
        "Properties > Source in QGIS)",
    )
    return None


def _say(warn: Optional[Warn], message: str) -> None:
    if warn is not None:
        warn(message)


def _name(crs: Any) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else _short(crs.to_string())


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _netcdf_crs(dataset: Any) -> Tuple[Optional[Tuple[Any, str]], Optional[Tuple[str, str]]]:
    """A CRS from the netCDF's attributes: ``((crs, where), None)``, or ``(None, (where, text))``
    for an attribute that is there but cannot be read, or ``(None, None)``."""
    if dataset.driver != "netCDF":
        return None, None
    from rasterio.crs import CRS

    unreadable = None
    for where, text in _crs_attributes(dataset):
        try:
            return (CRS.from_user_input(_as_crs_input(text)), where), None
        except Exception:  # rasterio raises CRSError and friends for text that is no CRS
            unreadable = unreadable or (where, text)
    return None, unreadable


def _as_crs_input(text: str) -> str:
    text = str(text).strip()
    return f"EPSG:{text}" if text.isdigit() else text


def _crs_attributes(dataset: Any) -> Iterator[Tuple[str, str]]:
    tags = dataset.tags()
    for key in ("NC_GLOBAL#crs", "NC_GLOBAL#crs_wkt", "NC_GLOBAL#spatial_ref"):
        if tags.get(key):
            yield f"global attribute '{key.split('#', 1)[1]}'", tags[key]
    for name, text in _grid_mapping_attributes(dataset.name):
        yield f"attribute '{name}' of its variable 'crs'", text


def _grid_mapping_attributes(path: str) -> Iterator[Tuple[str, str]]:
    # GDAL's raster view does not list the attributes of a grid-mapping variable that no data
    # variable references; its multidimensional view does.
    try:
        from osgeo import gdal

        dataset = gdal.OpenEx(path, gdal.OF_MULTIDIM_RASTER)
        root = dataset.GetRootGroup() if dataset is not None else None
        # Opened by name: GDAL leaves grid-mapping variables out of GetMDArrayNames.
        variable = root.OpenMDArray("crs") if root is not None else None
        if variable is None:
            return
        attributes = {a.GetName(): a.Read() for a in variable.GetAttributes()}
    except Exception:  # no osgeo, or GDAL cannot read the file this way: nothing found
        return
    for name in _CRS_ATTRIBUTES:
        value = attributes.get(name)
        if value not in (None, ""):
            yield name, str(value)
