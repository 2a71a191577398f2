"""Virtual rasters (GDAL VRT) that stack, resample and rescale band files without copying them.

Every product reader ends here: it lists the band files (with the scale, offset and nodata value its
metadata gives) and the grid they go onto, and :func:`write_stack_vrt` writes one VRT that GDAL,
rasterio and QGIS read as a plain multi-band raster.

Nodata and resampling: a band file that does not *declare* its nodata value (Sentinel-2 JP2 files
mark nodata with DN 0 only by convention) would be resampled with its nodata pixels as if they were
dark land, and the blend would survive the VRT's own nodata test. Such a file is therefore first
wrapped in a small VRT of its own native grid that declares the nodata value, so that GDAL's
bilinear kernel leaves those pixels out and marks output pixels without any valid neighbour as
nodata.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..data.raster import Grid
from ..files import output_tempfile
from .harmonised import ProductError

# rasterio's dtype names -> GDAL's VRT dataType names.
GDAL_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
}

# Offsets within this many pixels of a whole number are whole: grids of one product line up.
_PIXEL_EPS = 1e-6


@dataclass(frozen=True)
class RasterInfo:
    """What a band file holds, as GDAL reads it."""

    path: str
    grid: Grid
    count: int
    dtypes: Tuple[str, ...]
    nodata: Optional[float]
    descriptions: Tuple[Optional[str], ...]


@dataclass(frozen=True)
class BandSource:
    """One output band: which band of which file, and how its values are rescaled.

    Output value = source value * ``scale`` + ``offset``; source pixels equal to ``nodata`` (or to
    the file's own nodata value) stay nodata.
    """

    path: str
    band: int = 1
    name: str = ""
    wavelength_nm: Optional[float] = None
    scale: float = 1.0
    offset: float = 0.0
    nodata: Optional[float] = None


def probe(path: str) -> RasterInfo:
    """Read a raster's grid, band count, types and nodata value.

    Raises:
        ProductError: GDAL cannot open the file.
    """
    import rasterio

    try:
        with rasterio.open(path) as dataset:
            crs_wkt = "" if dataset.crs is None else dataset.crs.to_wkt()
            return RasterInfo(
                path=path,
                grid=Grid(crs_wkt, tuple(dataset.transform)[:6], dataset.width, dataset.height),
                count=dataset.count,
                dtypes=tuple(dataset.dtypes),
                nodata=dataset.nodata,
                descriptions=tuple(dataset.descriptions),
            )
    except rasterio.errors.RasterioIOError as error:
        raise ProductError(
            f"cannot read {path} as a raster: {error}. Check that the file is complete (not a "
            f"partial download) and that it is an image band of the product."
        ) from error


def same_crs(a: str, b: str) -> bool:
    """Whether two WKT strings name the same CRS."""
    if a == b:
        return True
    if not a or not b:
        return False
    from rasterio.crs import CRS

    return CRS.from_wkt(a) == CRS.from_wkt(b)


def finest_grid(infos: Sequence[RasterInfo]) -> Grid:
    """The grid of the band with the smallest pixels (first of equals), covering that band.

    Raises:
        ProductError: The bands are in different CRSs or a grid is rotated.
    """
    for info in infos:
        _check_north_up(info)
        if not same_crs(info.grid.crs_wkt, infos[0].grid.crs_wkt):
            raise ProductError(
                f"{info.path} is in another coordinate reference system than {infos[0].path}; "
                f"band files can be stacked only on one grid: reproject them to one CRS first "
                f"(Raster > Projections > Warp in QGIS)."
            )
    return min(infos, key=lambda info: info.grid.resolution[0] * info.grid.resolution[1]).grid


def _check_north_up(info: RasterInfo) -> None:
    _, b, _, d, _, _ = info.grid.transform  # affine order (a, b, c, d, e, f)
    if b != 0 or d != 0:
        raise ProductError(
            f"{info.path} has a rotated pixel grid; warp it to a north-up grid first "
            f"(gdalwarp) and choose the warped file."
        )


def _whole(value: float) -> float:
    nearest = round(value)
    return float(nearest) if abs(value - nearest) < _PIXEL_EPS else value


def _destination_window(source: Grid, grid: Grid) -> Tuple[float, float, float, float]:
    """Where the source's pixels fall on the output grid, in output pixels (x, y, width, height)."""
    sw, _, sx, _, sh, sy = source.transform
    gw, _, gx, _, gh, gy = grid.transform
    return (
        _whole((sx - gx) / gw),
        _whole((sy - gy) / gh),
        _whole(source.width * sw / gw),
        _whole(source.height * sh / gh),
    )


def _number(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return repr(float(value))


def _dataset_element(grid: Grid) -> ET.Element:
    root = ET.Element("VRTDataset", rasterXSize=str(grid.width), rasterYSize=str(grid.height))
    if grid.crs_wkt:
        ET.SubElement(root, "SRS").text = grid.crs_wkt
    a, b, c, d, e, f = grid.transform
    geotransform = (c, a, b, f, d, e)  # GDAL's order
    ET.SubElement(root, "GeoTransform").text = ", ".join(_number(v) for v in geotransform)
    return root


def _add_metadata(parent: ET.Element, items: Mapping[str, str], domain: str = "") -> None:
    if not items:
        return
    metadata = ET.SubElement(parent, "Metadata", **({"domain": domain} if domain else {}))
    for key, value in items.items():
        ET.SubElement(metadata, "MDI", key=key).text = value


def _source_elements(
    parent: ET.Element,
    tag: str,
    info: RasterInfo,
    band: int,
    grid: Grid,
    resampling: str,
    nodata: Optional[float],
) -> ET.Element:
    attributes = {"resampling": resampling} if tag == "ComplexSource" else {}
    source = ET.SubElement(parent, tag, **attributes)
    relative = "0"
    ET.SubElement(source, "SourceFilename", relativeToVRT=relative).text = info.path
    ET.SubElement(source, "SourceBand").text = str(band)
    ET.SubElement(
        source,
        "SrcRect",
        xOff="0",
        yOff="0",
        xSize=str(info.grid.width),
        ySize=str(info.grid.height),
    )
    x, y, width, height = _destination_window(info.grid, grid)
    ET.SubElement(
        source,
        "DstRect",
        xOff=_number(x),
        yOff=_number(y),
        xSize=_number(width),
        ySize=_number(height),
    )
    if nodata is not None and tag == "ComplexSource":
        ET.SubElement(source, "NODATA").text = _number(nodata)
    return source


def write_vrt_file(target: Path, root: ET.Element) -> None:
    """Write a VRT document atomically (a reader sees the old file or the new one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode")
    descriptor, temporary = output_tempfile(target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.write("\n")
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _declare_nodata(info: RasterInfo, band: int, nodata: float, target: Path) -> RasterInfo:
    """A VRT of one band on its own grid that declares ``nodata`` (see the module docstring)."""
    root = _dataset_element(info.grid)
    element = ET.SubElement(
        root, "VRTRasterBand", dataType=GDAL_TYPES[info.dtypes[band - 1]], band="1"
    )
    ET.SubElement(element, "NoDataValue").text = _number(nodata)
    _source_elements(element, "SimpleSource", info, band, info.grid, "nearest", None)
    write_vrt_file(target, root)
    return RasterInfo(
        path=str(target),
        grid=info.grid,
        count=1,
        dtypes=(info.dtypes[band - 1],),
        nodata=nodata,
        descriptions=(None,),
    )


def write_stack_vrt(
    target: Path,
    grid: Grid,
    bands: Sequence[BandSource],
    *,
    dtype: str,
    nodata: Optional[float],
    resampling: str = "bilinear",
    metadata: Optional[Mapping[str, str]] = None,
    infos: Optional[Mapping[str, RasterInfo]] = None,
) -> str:
    """Write a VRT that stacks ``bands`` on ``grid``, rescaled, with names and wavelengths.

    Args:
        target: The VRT file to write; helper VRTs go into a folder beside it.
        grid: The output grid (every band file must be in its CRS).
        bands: The output bands in order.
        dtype: Output data type (rasterio name, ``"float32"``).
        nodata: Output nodata value (``nan`` for float outputs), None for none.
        resampling: GDAL resampling of bands coarser or finer than the grid.
        metadata: Dataset metadata items (product, units) for people and later readers.
        infos: Already probed band files by path.

    Returns:
        The VRT's path as a string.
    """
    known: Dict[str, RasterInfo] = dict(infos or {})
    root = _dataset_element(grid)
    _add_metadata(root, dict(metadata or {}))
    helpers = target.with_name(target.name + ".bands")
    for index, band in enumerate(bands, start=1):
        info = known.get(band.path) or probe(band.path)
        known[band.path] = info
        if not same_crs(info.grid.crs_wkt, grid.crs_wkt):
            raise ProductError(
                f"{band.path} is in another coordinate reference system than the product's "
                f"other bands; reproject it to their CRS first."
            )
        _check_north_up(info)
        source_info, source_band = info, band.band
        source_nodata = info.nodata
        if band.nodata is not None and not _same_value(band.nodata, info.nodata):
            source_info = _declare_nodata(
                info, band.band, band.nodata, helpers / f"{index:02d}_{_safe(band.name)}.vrt"
            )
            source_band, source_nodata = 1, band.nodata
        element = ET.SubElement(root, "VRTRasterBand", dataType=GDAL_TYPES[dtype], band=str(index))
        if band.name:
            ET.SubElement(element, "Description").text = band.name
        if nodata is not None:
            ET.SubElement(element, "NoDataValue").text = _number(nodata)
        if band.wavelength_nm is not None:
            _add_metadata(
                element,
                {"WAVELENGTH": _number(band.wavelength_nm), "WAVELENGTH_UNIT": "nm"},
            )
            _add_metadata(
                element,
                {"CENTRAL_WAVELENGTH_UM": _number(band.wavelength_nm / 1000.0)},
                domain="IMAGERY",
            )
        source = _source_elements(
            element, "ComplexSource", source_info, source_band, grid, resampling, source_nodata
        )
        if band.scale != 1.0 or band.offset != 0.0:
            ET.SubElement(source, "ScaleOffset").text = _number(band.offset)
            ET.SubElement(source, "ScaleRatio").text = _number(band.scale)
    write_vrt_file(target, root)
    return str(target)


def _same_value(a: Optional[float], b: Optional[float]) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name) or "band"


def band_files_infos(paths: Sequence[str]) -> List[RasterInfo]:
    """Probe every file once, in order."""
    return [probe(path) for path in paths]


def target_in(workdir: Path, stem: str, identity: Sequence[str]) -> Path:
    """The VRT path for one input in the work folder: named after it, unique to its content.

    ``identity`` (paths with their sizes and modification times, parameters) goes into a short
    digest, so two inputs never share a VRT and a changed input gets a new one.
    """
    import hashlib

    digest = hashlib.sha256()
    for part in identity:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
        try:
            stat = os.stat(part)
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        except (OSError, ValueError):
            pass
    return Path(workdir) / f"{_safe(stem)[:80]}.{digest.hexdigest()[:12]}.vrt"
