"""Scenes: one place on the ground seen by one sensor (unpaired) or by two (paired).

A :class:`Scene` lists, per sensor, where each canonical band lives (file + band index). The first
sensor is the reference: its finest band defines the pixel grid onto which every band of every
sensor of the scene is read, so a crop of that grid is the same ground window for both sensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

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
        return crop_array(self._preloaded[sensor], row, col, height, width)

    def release(self) -> None:
        """Drop the whole-scene arrays read so far (the crop cache keeps its own copy)."""
        self._preloaded.clear()

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


def crop_array(whole: np.ndarray, row: int, col: int, height: int, width: int) -> np.ndarray:
    """A window of a (C, H, W) array; the part outside the array is NaN, as a boundless read."""
    out = np.full((whole.shape[0], height, width), np.nan, dtype=np.float32)
    top, left = max(row, 0), max(col, 0)
    bottom, right = min(row + height, whole.shape[1]), min(col + width, whole.shape[2])
    if bottom > top and right > left:
        out[:, top - row : bottom - row, left - col : right - col] = whole[
            :, top:bottom, left:right
        ]
    return out


@dataclass(eq=False)
class ArrayScene(Scene):
    """An unpaired scene whose pixels an in-memory loader provides: data without georeferencing.

    Some real sources carry no coordinate reference system (a numpy archive of a Sentinel-2 scene,
    LiDAR DEMs without a CRS). One sensor alone needs no CRS to be cropped, so such a scene is
    read whole once, on first use, and its grid is the array's own pixel grid with an empty CRS
    (``crs_wkt == ""``). It cannot be paired with another sensor or reprojected.

    Attributes:
        loader: Returns the scene's values, float32 (C, H, W), bands in the sensor's canonical
            order, NaN = no data (picklable, e.g. a ``functools.partial`` of a module function,
            so DataLoader workers can rebuild it).
        pixel_size: Pixel size in metres, as far as the source states it (for summaries).
    """

    loader: Optional[Callable[[], np.ndarray]] = None
    pixel_size: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.paired:
            raise ValueError(
                f"scene {self.name!r}: data without georeferencing cannot be paired with "
                "another sensor (no common ground grid)"
            )
        if self.loader is None:
            raise ValueError(f"scene {self.name!r}: an ArrayScene needs a loader")

    def _values(self) -> np.ndarray:
        raster = self.rasters[0]
        if raster.sensor not in self._preloaded:
            values = np.asarray(self.loader(), dtype=np.float32)  # type: ignore[misc]
            if values.ndim != 3 or values.shape[0] != len(raster.bands):
                raise ValueError(
                    f"scene {self.name!r}: the loader gave shape {values.shape}, expected "
                    f"({len(raster.bands)}, H, W) for sensor {raster.sensor!r}"
                )
            self._preloaded[raster.sensor] = values
        return self._preloaded[raster.sensor]

    def reference_grid(self) -> Grid:
        """The array's pixel grid (empty CRS, ``pixel_size`` metres per pixel)."""
        if self.grid is None:
            _, height, width = self._values().shape
            size = float(self.pixel_size)
            self.grid = Grid("", (size, 0.0, 0.0, 0.0, -size, 0.0), width, height)
        return self.grid

    def read(self, sensor: str, row: int, col: int, height: int, width: int) -> np.ndarray:
        """Raw values of a window of the array (NaN outside it)."""
        self.raster(sensor)  # a clear KeyError for a sensor the scene does not have
        return crop_array(self._values(), row, col, height, width)
