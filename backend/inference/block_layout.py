"""How an output GeoTIFF is laid out on disk: its blocks, band interleaving and compression.

The layout is chosen per output from what it holds, so that the writer can hand every block to GDAL
once, complete (:mod:`.block_assembler`), and GDAL compresses it once:

- **Block height** is the tallest of 256, 128, 64, 32 and 16 rows whose row of blocks across the
  raster's width fits :data:`PENDING_ROW_BYTES`: the writer holds one such row of blocks while the
  scan fills it, and that must stay small next to the blend buffer's overlap band, the only part of
  the engine's memory that grows with the raster's width. Wide float outputs get flat blocks
  (256 x 16); flat blocks cost nothing measurable (7 probability bands of 2048², ZSTD: the same
  write time and 83 against 82 MB for 256 x 16 against 256 x 256 blocks, reading three bands of a
  1024² window as fast). Blocks are never larger than the raster (rounded up to 16, the TIFF
  minimum): a 64 x 64 embedding is not padded to 256 x 256.
- **Band interleaving** for several bands: each band's block is its own compressed piece, so QGIS
  drawing three bands of a 240-band embedding reads those three, and no band's block ever waits
  for another's (with pixel interleaving one block holds every band, 63 MB for 256 x 256 x 240).
- **Compression**: ZSTD (level 1) with the floating-point predictor for float bands, with the
  horizontal predictor for other multi-band integers: about the size of DEFLATE at a third of its
  CPU time on real model outputs (measured: 7 probability bands of 2048², 0.7 s against 2.0 s,
  82 against 80 MB). Class rasters (one uint8 band) stay DEFLATE without predictor: smallest on
  categorical data, readable everywhere, and cheap at one byte a cell. A GDAL built without ZSTD
  gets DEFLATE throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, Optional

import numpy as np

# Bytes of one row of blocks across the raster that the writer may hold while it fills them.
PENDING_ROW_BYTES = 512 * 2**10
BLOCK_WIDTH = 256
BLOCK_HEIGHTS = (256, 128, 64, 32, 16)
TIFF_BLOCK_MULTIPLE = 16  # TIFF tile sides are multiples of 16


@dataclass(frozen=True)
class BlockLayout:
    """Block size, interleaving and compression of one output GeoTIFF.

    Attributes:
        block_width, block_height: block side in cells (multiples of 16).
        interleave: ``band`` (each band's blocks apart) or ``pixel``.
        compress: GDAL compression name.
        predictor: TIFF predictor (1 none, 2 horizontal, 3 floating point).
    """

    block_width: int
    block_height: int
    interleave: str
    compress: str
    predictor: int

    def creation_options(self) -> Dict[str, Any]:
        """The rasterio profile keys of this layout."""
        options: Dict[str, Any] = {
            "tiled": True,
            "blockxsize": self.block_width,
            "blockysize": self.block_height,
            "interleave": self.interleave,
            "compress": self.compress,
            "predictor": self.predictor,
        }
        if self.compress == "zstd":
            options["zstd_level"] = 1
        return options


def choose_layout(
    width: int, height: int, count: int, dtype: str, zstd: Optional[bool] = None
) -> BlockLayout:
    """The layout of a ``width`` x ``height`` output of ``count`` bands of ``dtype``.

    Args:
        zstd: whether GDAL can write ZSTD (None: ask the GDAL in use).
    """
    itemsize = np.dtype(dtype).itemsize
    block_width = min(BLOCK_WIDTH, _round_up(width, TIFF_BLOCK_MULTIPLE))
    row_width = _round_up(width, block_width)  # the cells of a row of blocks, padding included
    tallest = _round_up(height, TIFF_BLOCK_MULTIPLE)
    block_height = BLOCK_HEIGHTS[-1]
    for candidate in BLOCK_HEIGHTS:
        if candidate * row_width * count * itemsize <= PENDING_ROW_BYTES:
            block_height = candidate
            break
    block_height = min(block_height, max(tallest, TIFF_BLOCK_MULTIPLE))
    if zstd is None:
        zstd = gdal_has_zstd()
    kind = np.dtype(dtype).kind
    if count == 1 and dtype == "uint8":
        compress, predictor = "deflate", 1
    elif zstd:
        compress, predictor = "zstd", 3 if kind == "f" else 2
    else:
        compress, predictor = "deflate", 3 if kind == "f" else 2
    interleave = "band" if count > 1 else "pixel"
    return BlockLayout(block_width, block_height, interleave, compress, predictor)


@lru_cache(maxsize=1)
def gdal_has_zstd() -> bool:
    """Whether the GDAL that rasterio runs on writes ZSTD-compressed GeoTIFFs."""
    try:
        from osgeo import gdal
    except ImportError:  # rasterio without the GDAL bindings: DEFLATE is always there
        return False
    driver = gdal.GetDriverByName("GTiff")
    options = driver.GetMetadataItem("DMD_CREATIONOPTIONLIST") if driver else ""
    return "ZSTD" in (options or "")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
