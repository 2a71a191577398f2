"""A later image put onto an earlier image's grid, so two dates compare pixel for pixel.

Change detection runs the encoder on both dates and compares them per pixel: both must be on one
grid before the encoder sees them, or the two embedding rasters would not line up cell for cell.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from ..inference.errors import InputMismatchError

ROWS_PER_BLOCK = 512


def same_grid(path_a: Union[str, Path], path_b: Union[str, Path]) -> bool:
    import rasterio

    with rasterio.open(path_a) as a, rasterio.open(path_b) as b:
        return (
            a.crs == b.crs
            and (a.width, a.height) == (b.width, b.height)
            and a.transform.almost_equals(b.transform)
        )


def warp_onto(
    source: Union[str, Path],
    bands: Optional[Sequence[int]],
    reference: Union[str, Path],
    out_path: Union[str, Path],
) -> Path:
    """Write ``bands`` of ``source`` resampled (bilinear) onto ``reference``'s grid as float32.

    Pixels the source does not cover, and its nodata, become NaN (the output's nodata). The band
    descriptions of the chosen bands are kept.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window

    with rasterio.open(reference) as grid, rasterio.open(source) as dataset:
        if dataset.crs is None or grid.crs is None:
            raise InputMismatchError(
                f"{Path(source).name} is on another grid than {Path(reference).name} and one of "
                "them has no coordinate reference system: assign one, or resample the later image "
                "onto the earlier one"
            )
        indexes: List[int] = list(bands) if bands else list(range(1, dataset.count + 1))
        options = {
            "crs": grid.crs,
            "transform": grid.transform,
            "width": grid.width,
            "height": grid.height,
            "resampling": Resampling.bilinear,
        }
        profile = {
            "driver": "GTiff",
            "width": grid.width,
            "height": grid.height,
            "count": len(indexes),
            "dtype": "float32",
            "nodata": math.nan,
            "crs": rasterio.crs.CRS.from_wkt(grid.crs.to_wkt()),
            "transform": grid.transform,
            "tiled": True,
            "compress": "deflate",
        }
        extra = {"src_nodata": dataset.nodata, "nodata": dataset.nodata}
        if dataset.nodata is None:
            extra = {"add_alpha": True}
        with (
            WarpedVRT(dataset, **options, **extra) as vrt,
            rasterio.open(out_path, "w", **profile) as out,
        ):
            for row in range(0, grid.height, ROWS_PER_BLOCK):
                window = Window(0, row, grid.width, min(ROWS_PER_BLOCK, grid.height - row))
                values = vrt.read(indexes, window=window, out_dtype="float32")
                if dataset.nodata is None:
                    valid = vrt.read(vrt.count, window=window) > 0
                else:
                    valid = np.all(vrt.read_masks(indexes, window=window) > 0, axis=0)
                values[:, ~valid] = np.nan
                out.write(values, window=window)
            for k, index in enumerate(indexes, start=1):
                description = dataset.descriptions[index - 1]
                if description:
                    out.set_band_description(k, description)
    return Path(out_path)
