"""Writing an output GeoTIFF atomically, block by block.

The raster is written to a hidden temporary file in the destination folder and renamed over the
destination only when the run succeeds: a failed or cancelled run leaves nothing behind, and a
reader never sees a half-written file. Blocks of cells arrive as windows in any order; the
inference engine writes every cell once.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..files import output_tempfile
from ..run_scratch import owner_tag, remove_stale
from .errors import InferenceError
from .inputs import ReferenceGrid

# The suffix of the hidden temporary file beside an output while it is written.
PARTIAL_SUFFIX = ".partial.tif"


class GeoTiffWriter:
    """A tiled, compressed GeoTIFF on the reference grid coarsened by ``stride``.

    Args:
        path: the final output path.
        grid: the reference grid (CRS, transform, size).
        stride: output cell size in reference pixels.
        count, dtype, nodata: bands, data type and nodata value of the output.
        descriptions: one description per band.
        colormap: ``{value: (r, g, b, a)}`` for a single-band class raster.
        category_names: names indexed by raster value (a class raster's legend).
    """

    def __init__(
        self,
        path: Path,
        grid: ReferenceGrid,
        stride: int,
        count: int,
        dtype: str,
        nodata: float,
        descriptions: List[str],
        colormap: Optional[Dict[int, Tuple[int, int, int, int]]] = None,
        category_names: Optional[List[str]] = None,
    ):
        self.path = Path(path)
        self.width = math.ceil(grid.width / stride)
        self.height = math.ceil(grid.height / stride)
        self.count, self.dtype, self.nodata = count, dtype, nodata
        self.category_names = category_names
        if not self.path.parent.is_dir():
            raise InferenceError(
                f"output folder {self.path.parent} does not exist; create it or choose another path"
            )
        # Partial files of runs that were killed (and so could not remove theirs) go first.
        remove_stale(self.path.parent, f".*{PARTIAL_SUFFIX}*")
        try:
            fd, tmp = output_tempfile(
                self.path.parent, f".{self.path.stem}.{owner_tag()}.", PARTIAL_SUFFIX
            )
        except OSError as exc:
            raise InferenceError(
                f"cannot write to the output folder {self.path.parent} ({exc.strerror or exc}); "
                "choose a folder you can write to"
            ) from None
        self.tmp_path, self.dataset = Path(tmp), None
        try:
            os.close(fd)
            self._open(grid, stride, descriptions, colormap)
        except BaseException:  # Ctrl+C or SIGTERM (KeyboardInterrupt) too: no partial file left
            self.abort()
            raise

    def _open(self, grid: ReferenceGrid, stride: int, descriptions, colormap) -> None:
        """Create the partial GeoTIFF (``self.dataset``) with its bands' names and colours."""
        import rasterio
        from affine import Affine
        from rasterio.errors import NotGeoreferencedWarning

        profile = {
            "driver": "GTiff",
            "width": self.width,
            "height": self.height,
            "count": self.count,
            "dtype": self.dtype,
            "nodata": self.nodata,
            "transform": grid.transform * Affine.scale(stride),
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
            "predictor": 3 if np.dtype(self.dtype).kind == "f" else 2,
            "BIGTIFF": "IF_SAFER",
        }
        if grid.crs is not None:
            # As WKT: custom CRSs have no authority code to round-trip through.
            profile["crs"] = rasterio.crs.CRS.from_wkt(grid.crs.to_wkt())
        with warnings.catch_warnings():
            # A raster in pixel coordinates gets the north-up transform (1, 0, 0, 0, -1, 0);
            # rasterio warns that some drivers drop it, but GeoTIFF keeps it.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            self.dataset = rasterio.open(self.tmp_path, "w", **profile)
        for band, text in enumerate(descriptions, start=1):
            self.dataset.set_band_description(band, text)
        if colormap:
            self.dataset.write_colormap(1, colormap)

    def write_window(self, row: int, col: int, block: np.ndarray) -> None:
        """Write ``(count, h, w)`` cells with their top-left cell at (``row``, ``col``)."""
        from rasterio.windows import Window

        _, h, w = block.shape
        if row < 0 or col < 0 or row + h > self.height or col + w > self.width:
            raise ValueError(
                f"window of {h} x {w} cells at ({row}, {col}) is outside the "
                f"{self.height} x {self.width} output"
            )
        self.dataset.write(block.astype(self.dtype, copy=False), window=Window(col, row, w, h))

    def finish(self) -> Path:
        """Close the file and move it into place."""
        self.dataset.close()
        if self.category_names:
            _write_category_names(self.tmp_path, self.category_names)
        os.replace(self.tmp_path, self.path)
        aux, final_aux = _aux(self.tmp_path), _aux(self.path)
        if aux.exists():
            os.replace(aux, final_aux)
        elif final_aux.exists():
            final_aux.unlink()  # a stale legend from an earlier output would describe wrong classes
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file (and its sidecar)."""
        dataset = getattr(self, "dataset", None)
        if dataset is not None and not dataset.closed:
            dataset.close()
        for leftover in (self.tmp_path, _aux(self.tmp_path)):
            if leftover.exists():
                leftover.unlink()


def _aux(path: Path) -> Path:
    return path.with_name(path.name + ".aux.xml")


def _write_category_names(path: Path, names: List[str]) -> None:
    # rasterio cannot write category names; GDAL keeps them in the .aux.xml sidecar for GeoTIFF.
    from osgeo import gdal

    dataset: Any = gdal.Open(str(path), gdal.GA_Update)
    band = dataset.GetRasterBand(1)
    band.SetCategoryNames(names)
    band = None
    dataset = None  # closing flushes the sidecar
