"""Scenes: one place on the ground seen by one sensor (unpaired) or by two (paired).

A :class:`Scene` lists, per sensor, where each canonical band lives (file + band index). The first
sensor is the reference: its finest band defines the pixel grid onto which every band of every
sensor of the scene is read, so a crop of that grid is the same ground window for both sensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .raster import BandSource, Grid, read_grid, read_window

# Scenes up to this many grid pixels are read whole once per process and cropped from memory;
# larger ones are read window by window so memory stays bounded whatever the raster size.
PRELOAD_MAX_PIXELS = 4_000_000


@dataclass(frozen=True)
class SensorRaster:
    """One sensor's bands in a scene, in the sensor's canonical band order.

    Attributes:
        sensor: Sensor registry name (``"s2"``, ``"sar"``, ``"rgb"``, ``"dsm"``).
        bands: Canonical band names, one per entry of ``sources``.
        sources: Where each band is read from.
        resampling: GDAL resampling used when a band is not on the scene grid.
    """

    sensor: str
    bands: Sequence[str]
    sources: Sequence[BandSource]
    resampling: str = "bilinear"

    def __post_init__(self) -> None:
        if len(self.bands) != len(self.sources):
            raise ValueError(
                f"sensor {self.sensor!r}: {len(self.bands)} band names for "
                f"{len(self.sources)} band sources"
            )


@dataclass
class Scene:
    """A place seen by one sensor or, co-registered, by two.

    Attributes:
        name: Human-readable id (dataset patch name, file stem).
        rasters: One :class:`SensorRaster` per sensor; the first is the reference grid.
        grid: The reference grid; found from the reference sensor's finest band if not given.
    """

    name: str
    rasters: List[SensorRaster]
    grid: Optional[Grid] = field(default=None)
    _preloaded: Dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= len(self.rasters) <= 2:
            raise ValueError(
                f"scene {self.name!r}: a scene has one sensor or a pair, not {len(self.rasters)}"
            )
        sensors = [r.sensor for r in self.rasters]
        if len(set(sensors)) != len(sensors):
            raise ValueError(
                f"scene {self.name!r}: a pair needs two different sensors, got {sensors}"
            )

    @property
    def sensors(self) -> List[str]:
        """Sensor names, reference first."""
        return [r.sensor for r in self.rasters]

    @property
    def paired(self) -> bool:
        """True when two co-registered sensors see this scene."""
        return len(self.rasters) == 2

    def reference_grid(self) -> Grid:
        """The pixel grid of the reference sensor's finest band (read once, then kept)."""
        if self.grid is None:
            grids = [read_grid(s.path) for s in self.rasters[0].sources]
            self.grid = min(grids, key=lambda g: g.resolution[0] * g.resolution[1])
        return self.grid

    def raster(self, sensor: str) -> SensorRaster:
        """The bands of one sensor of this scene."""
        for raster in self.rasters:
            if raster.sensor == sensor:
                return raster
        raise KeyError(f"scene {self.name!r} has no sensor {sensor!r} (it has {self.sensors})")

    def read(self, sensor: str, row: int, col: int, height: int, width: int) -> np.ndarray:
        """Raw values (bands in canonical order, NaN = no data) of a window of the scene grid."""
        raster = self.raster(sensor)
        grid = self.reference_grid()
        if grid.width * grid.height > PRELOAD_MAX_PIXELS:
            return read_window(raster.sources, grid, row, col, height, width, raster.resampling)
        if sensor not in self._preloaded:
            self._preloaded[sensor] = read_window(
                raster.sources, grid, 0, 0, grid.height, grid.width, raster.resampling
            )
        whole = self._preloaded[sensor]
        out = np.full((whole.shape[0], height, width), np.nan, dtype=np.float32)
        # Clip the window to the scene; the part outside stays NaN (no data), as a boundless read.
        top, left = max(row, 0), max(col, 0)
        bottom, right = min(row + height, grid.height), min(col + width, grid.width)
        if bottom > top and right > left:
            out[:, top - row : bottom - row, left - col : right - col] = whole[
                :, top:bottom, left:right
            ]
        return out

    def describe(self) -> Dict[str, object]:
        """A JSON-friendly summary (for logs and ``msgfm data stats``)."""
        grid = self.reference_grid()
        return {
            "name": self.name,
            "sensors": self.sensors,
            "width": grid.width,
            "height": grid.height,
            "resolution_m": round(grid.resolution[0], 4),
        }
