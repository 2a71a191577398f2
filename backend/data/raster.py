"""Reading raster bands onto a common pixel grid.

Pretraining pairs are cut from the *same ground window* of two sensors. Rather than cropping each
file in its own pixel space (which drifts as soon as resolutions, origins or CRSs differ), every
band is read onto one reference grid: the crop is a window of that grid, and each band is warped
into exactly that window. Bands already on the grid are read directly (no resampling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

# Two grids whose transforms differ by less than this fraction of a pixel are the same grid.
_GRID_TOLERANCE = 1e-6


@dataclass(frozen=True)
class BandSource:
    """One band of one raster file.

    Attributes:
        path: File path (anything GDAL opens: GeoTIFF, JPEG2000...).
        index: 1-based band index inside the file.
        scale: ``"linear_to_db"`` converts linear backscatter power to dB; None keeps values.
    """

    path: str
    index: int = 1
    scale: Optional[str] = None


@dataclass(frozen=True)
class Grid:
    """A pixel grid: CRS (WKT), affine transform (GDAL-independent 6-tuple) and size."""

    crs_wkt: str
    transform: Tuple[float, float, float, float, float, float]
    width: int
    height: int

    @property
    def resolution(self) -> Tuple[float, float]:
        """Pixel size (x, y) in CRS units."""
        a, b, _, d, e, _ = self.transform
        return (float(np.hypot(a, d)), float(np.hypot(b, e)))

    def window_transform(self, row: int, col: int) -> Tuple[float, ...]:
        """Transform of a window whose upper-left pixel is (row, col) of this grid."""
        a, b, c, d, e, f = self.transform
        return (a, b, c + a * col + b * row, d, e, f + d * col + e * row)

    def window_bounds(self, row: int, col: int, height: int, width: int) -> Tuple[float, ...]:
        """(left, bottom, right, top) of a window, for a north-up grid."""
        a, _, c, _, e, f = self.window_transform(row, col)
        return (c, f + e * height, c + a * width, f)


def read_grid(path: str) -> Grid:
    """The pixel grid of a raster file."""
    import rasterio

    with rasterio.open(path) as dataset:
        if dataset.crs is None:
            raise ValueError(
                f"{path}: the raster has no coordinate reference system; pairs and crops need "
                "georeferenced rasters (assign a CRS, e.g. with gdal_edit.py -a_srs)"
            )
        return Grid(
            crs_wkt=dataset.crs.to_wkt(),
            transform=tuple(dataset.transform)[:6],
            width=dataset.width,
            height=dataset.height,
        )


def _same_grid(dataset, grid: Grid) -> bool:
    from rasterio.crs import CRS

    if dataset.crs is None or dataset.crs != CRS.from_wkt(grid.crs_wkt):
        return False
    source = tuple(dataset.transform)[:6]
    pixel = max(abs(grid.transform[0]), abs(grid.transform[4]))
    scale_ok = all(
        abs(source[i] - grid.transform[i]) <= _GRID_TOLERANCE * pixel for i in (0, 1, 3, 4)
    )
    # The origins must differ by a whole number of pixels for a direct window read.
    dx = (source[2] - grid.transform[2]) / grid.transform[0]
    dy = (source[5] - grid.transform[5]) / grid.transform[4]
    return scale_ok and abs(dx - round(dx)) < 1e-4 and abs(dy - round(dy)) < 1e-4


def read_band_window(
    band: BandSource,
    grid: Grid,
    row: int,
    col: int,
    height: int,
    width: int,
    resampling: str = "bilinear",
) -> np.ndarray:
    """Read one band into a window of ``grid``; pixels without data are NaN.

    Args:
        band: The file and band to read.
        grid: The reference grid the window belongs to.
        row: Upper-left row of the window on ``grid``.
        col: Upper-left column of the window on ``grid``.
        height: Window height in grid pixels.
        width: Window width in grid pixels.
        resampling: GDAL resampling name for bands not on the grid (``bilinear`` for continuous
            values, ``nearest`` for classes).

    Returns:
        float32 array (height, width).
    """
    import rasterio
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from rasterio.transform import Affine
    from rasterio.warp import reproject
    from rasterio.windows import Window

    with rasterio.open(band.path) as dataset:
        if not 1 <= band.index <= dataset.count:
            raise ValueError(
                f"{band.path}: band {band.index} requested but the file has {dataset.count} band(s)"
            )
        nodata = dataset.nodata
        if _same_grid(dataset, grid):
            source = dataset.transform
            col_off = round((grid.transform[2] - source.c) / source.a) + col
            row_off = round((grid.transform[5] - source.f) / source.e) + row
            values = dataset.read(
                band.index,
                window=Window(col_off, row_off, width, height),
                boundless=True,
                masked=True,
                out_dtype="float32",
            )
            out = values.filled(np.nan).astype(np.float32)
        else:
            out = np.full((height, width), np.nan, dtype=np.float32)
            reproject(
                source=rasterio.band(dataset, band.index),
                destination=out,
                src_nodata=nodata,
                dst_transform=Affine(*grid.window_transform(row, col)),
                dst_crs=CRS.from_wkt(grid.crs_wkt),
                dst_nodata=np.nan,
                resampling=Resampling[resampling],
            )
    if nodata is not None and not np.isnan(nodata):
        out[out == nodata] = np.nan
    if band.scale == "linear_to_db":
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(out > 0, 10.0 * np.log10(out), np.nan).astype(np.float32)
    elif band.scale is not None:
        raise ValueError(f"{band.path}: unknown value scale {band.scale!r}; use 'linear_to_db'")
    return out


def read_window(
    bands: Sequence[BandSource],
    grid: Grid,
    row: int,
    col: int,
    height: int,
    width: int,
    resampling: str = "bilinear",
) -> np.ndarray:
    """Read several bands into one window of ``grid``: float32 (C, height, width), NaN = no data."""
    return np.stack([read_band_window(b, grid, row, col, height, width, resampling) for b in bands])
