"""Writing an output GeoTIFF atomically, block by block.

The raster is written to a hidden temporary file in the destination folder and renamed over the
destination only when the run succeeds: a failed or cancelled run leaves nothing behind, and a
reader never sees a half-written file. Cells arrive as windows in any order, every cell once; they
are gathered into the file's blocks (:mod:`.block_assembler`), so GDAL gets each block once, whole,
and compresses it once. Block size, band interleaving and compression suit the output
(:mod:`.block_layout`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..files import output_tempfile
from ..run_scratch import owner_tag, remove_stale
from .block_assembler import BlockAssembler
from .block_layout import BlockLayout, choose_layout
from .errors import InferenceError
from .inputs import ReferenceGrid

# The suffix of the hidden temporary file beside an output while it is written.
PARTIAL_SUFFIX = ".partial.tif"


class GeoTiffWriter:
    """A tiled, compressed GeoTIFF on the reference grid coarsened by ``stride``.

    Attributes:
        layout: the file's blocks, interleaving and compression.

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
        self.height, self.width = grid.cells(stride)
        self.count, self.dtype, self.nodata = count, dtype, nodata
        self.category_names = category_names
        self.layout: BlockLayout = choose_layout(self.width, self.height, count, dtype)
        self.blocks = BlockAssembler(
            self.width,
            self.height,
            count,
            dtype,
            nodata,
            self.layout.block_width,
            self.layout.block_height,
            self._write_blocks,
        )
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
            **self.layout.creation_options(),
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
        """Write ``(count, h, w)`` cells with their top-left cell at (``row``, ``col``).

        Every cell is written once; a block reaches the file when its last cells arrive.
        """
        _, h, w = block.shape
        if row < 0 or col < 0 or row + h > self.height or col + w > self.width:
            raise ValueError(
                f"window of {h} x {w} cells at ({row}, {col}) is outside the "
                f"{self.height} x {self.width} output"
            )
        self.blocks.add(row, col, block.astype(self.dtype, copy=False))

    def _write_blocks(self, row: int, col: int, cells: np.ndarray) -> None:
        """Hand GDAL a window of whole blocks (the only place cells reach the file)."""
        from rasterio.windows import Window

        _, h, w = cells.shape
        self.dataset.write(cells, window=Window(col, row, w, h))

    def finish(self) -> Path:
        """Write what is left, close the file and move it into place."""
        self.blocks.flush()
        factors = overview_factors(self.width, self.height) if self.category_names else []
        if factors:
            # A class map gets overviews, so QGIS draws it zoomed out without reading every
            # cell; nearest neighbour keeps class values (one byte a cell: a small re-read).
            from rasterio.enums import Resampling

            self.dataset.build_overviews(factors, Resampling.nearest)
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


def overview_factors(width: int, height: int, smallest: int = 256) -> List[int]:
    """Overview levels 2, 4, 8... down to the last one still ``smallest`` cells on its long side."""
    factors = []
    factor = 2
    while max(width, height) // factor >= smallest:
        factors.append(factor)
        factor *= 2
    return factors


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
