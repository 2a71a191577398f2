"""How long a run will take and how much disk its outputs need, told once the first batch is done.

A large raster starts with "0/173889 tiles": the user deserves to know at once whether that is
minutes or a night, and whether the disk can hold the result. The time per tile is measured on the
run itself (the first batch, read and model call included), not assumed.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Optional

from .i18n import tr

LONG_RUN_S = 60.0  # runs expected to take longer are announced
_TILES = re.compile(r"^(\d+)/(\d+) tiles")


class RunEstimate:
    """Watches a run's progress; :meth:`observe` returns the announcement of a long run, once.

    Args:
        job: the run's :class:`..runner.InferenceJob` (its model and reference raster give the
            output size), or None.
        clock: seconds, monotonic (a test gives its own).
    """

    def __init__(self, job: Any = None, clock: Callable[[], float] = time.monotonic):
        self.job = job
        self.clock = clock
        self.started = clock()
        self.told = False

    def observe(self, fraction: float, message: str) -> Optional[str]:
        if fraction <= 0.0:  # a stage before the tiles (opening, reading): they start later
            self.started = self.clock()
            return None
        if self.told:
            return None
        found = _TILES.match(message or "")
        if found is None:
            return None
        self.told = True  # measured on the first batch only: later batches change little
        done, total = int(found.group(1)), int(found.group(2))
        if done <= 0:
            return None
        per_tile = (self.clock() - self.started) / done
        expected = per_tile * total
        if expected <= LONG_RUN_S:
            return None
        text = tr(
            "Long run: {} tiles at {:.2g} s per tile (measured so far): about {} in all"
        ).format(f"{total:,}", per_tile, duration(expected))
        size = output_bytes(self.job) if self.job is not None else None
        if size is not None:
            text += tr("; the outputs take up to {} on disk").format(file_size(size))
        return text


def output_bytes(job: Any) -> Optional[int]:
    """Uncompressed size of the run's outputs (GeoTIFF compression only makes them smaller), or
    None when the model or the reference raster cannot be read."""
    try:
        from osgeo import gdal

        from backend.inference.outputs import effective_stride

        from .model_checks import read_metadata

        metadata = read_metadata(job.model)
        dataset = gdal.Open(job.inputs[0]["path"])
        if dataset is None:
            return None
        width, height = dataset.RasterXSize, dataset.RasterYSize
        tile_size = job.tile_size or metadata.tile_size
        total = 0
        for spec in metadata.outputs:
            stride = effective_stride(spec, metadata, tile_size)
            bands = 1 if spec.kind == "class" else len(spec.bands)
            cells = max(1, width // stride) * max(1, height // stride)  # whole cells only
            total += cells * bands * _value_bytes(job, spec, metadata)
        return total
    except Exception:  # an estimate must never stop a run
        return None


def _value_bytes(job: Any, spec: Any, metadata: Any) -> int:
    """Bytes per value of an output: a class map one; reflectance, by default, those of the
    integer type of the plain raster of its sensor (uint16 Sentinel-2: two, as the engine writes
    it, ``backend.inference.outputs.reflectance_source``); everything else float32. Products and
    band sets are harmonised into float32 by the engine: four."""
    if spec.kind == "class":
        return 1
    if spec.kind != "reflectance" or job.extra.get("reflectance_dtype", "input") != "input":
        return 4
    model_input = next((i for i in metadata.inputs if i.sensor == spec.sensor), None)
    raster = next((r for r in job.inputs if r.get("sensor") == spec.sensor), None)
    if model_input is None or raster is None or model_input.normalization == "per_tile":
        return 4
    from pathlib import Path

    from osgeo import gdal

    from backend.products import landsat, sentinel2
    from backend.products.separate import band_set

    path = str(raster["path"])
    if sentinel2.is_product(path) or landsat.is_product(path) or Path(path).is_dir():
        return 4
    if sentinel2.band_calibration(path) is not None or band_set(Path(path)) is not None:
        return 4
    dataset = gdal.Open(path)
    if dataset is None or dataset.RasterCount == 0:
        return 4
    indexes = raster.get("bands") or range(1, dataset.RasterCount + 1)
    bands = [dataset.GetRasterBand(int(index)) for index in indexes]
    types = {band.DataType for band in bands}
    nodatas = {band.GetNoDataValue() for band in bands}
    integer = (gdal.GDT_Byte, gdal.GDT_UInt16, gdal.GDT_Int16, gdal.GDT_UInt32, gdal.GDT_Int32)
    if len(types) != 1 or len(nodatas) != 1 or next(iter(types)) not in integer:
        return 4
    return gdal.GetDataTypeSize(next(iter(types))) // 8


def duration(seconds: float) -> str:
    """``seconds`` as people say it: "40 s", "12 min", "3.5 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def file_size(size: float) -> str:
    """``size`` bytes as "820 MB", "3.4 GB"."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000:
            return (
                f"{size:.0f} {unit}" if unit in ("B", "KB") or size >= 100 else f"{size:.1f} {unit}"
            )
        size /= 1000
    return f"{size:.1f} TB"
