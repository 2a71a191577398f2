"""Land-cover segmentation tiles from any image rasters plus a class raster or class polygons.

Images: one :class:`ImageSource` per sensor, each a multi-band file or one file per band (bands
matched to the sensor's canonical names by file name, e.g. ``lsat7_2000_10.tif`` is Landsat B1).
The first image's finest band is the reference grid; other bands and sensors are warped onto it
(bilinear). Labels: a class raster (nearest resampling onto the grid when it is not on it; its
nodata is unlabelled) or a polygon layer with a class field, rasterised onto the grid. Class values
are numbered 0..K-1 in sorted order (``class_values`` records them; strings sort alphabetically).

Samples are tiles of ``tile_size`` with ``stride``: ``{"inputs": {sensor: float32 (C, T, T)},
"target": int64 (T, T), "row": r, "col": c}`` with ``ignore_index`` where there is no label; tiles
with no labelled pixel are left out. Inputs are raw sensor units, NaN = no data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ...conventions import IGNORE_INDEX
from ...sensors import get_sensor, select_bands
from ..layouts import sensor_raster_from_file
from ..raster import BandSource, Grid, read_grid, read_window
from .labels import class_indices, polygon_layer_source, rasterize_polygons, read_class_raster
from .windows import HoldoutUnit, tile_origins

# Rasters up to this many grid pixels are read whole once; larger ones tile by tile.
PRELOAD_MAX_PIXELS = 4_000_000


@dataclass(frozen=True)
class ImageSource:
    """One sensor's image.

    Attributes:
        sensor: Sensor registry name.
        paths: One multi-band file, or one single-band file per band (any order; extra bands such
            as L1C ``B10`` are dropped by name).
        bands: For a multi-band file, how its bands map to the sensor's (see
            :func:`backend.data.layouts.sensor_raster_from_file`): ``{band: index}``, a list naming
            every band, or None when the file holds the sensor's bands in canonical order.
    """

    sensor: str
    paths: Sequence[Union[str, Path]]
    bands: Optional[Union[Mapping[str, int], Sequence[str]]] = field(default=None)

    def band_sources(self) -> List[BandSource]:
        """Where each canonical band of the sensor is read from."""
        paths = [
            Path(p) for p in ([self.paths] if isinstance(self.paths, (str, Path)) else self.paths)
        ]
        for path in paths:
            if not path.exists():
                raise FileNotFoundError(f"{self.sensor} image {path} does not exist")
        if len(paths) == 1:
            return list(sensor_raster_from_file(self.sensor, paths[0], self.bands).sources)
        indexes = select_bands(self.sensor, [p.name for p in paths])
        return [BandSource(str(paths[i]), 1) for i in indexes]


def _finest_grid(sources: Sequence[BandSource]) -> Grid:
    grids = {s.path: read_grid(s.path) for s in sources}
    return min(grids.values(), key=lambda g: g.resolution[0] * g.resolution[1])


class RasterSegmentationDataset:
    """Tiles of image rasters with per-pixel class labels (see the module docstring).

    Args:
        images: One source per sensor; the first defines the grid.
        label_raster: A class raster (exclusive with ``polygons``).
        polygons: A polygon layer (GeoPackage, Shapefile...), or QGIS's layer source
            ``path|layername=NAME`` for one layer of a file that holds several.
        class_field: The polygons' class attribute.
        polygon_layer: Layer name inside ``polygons`` (default: the first).
        class_values: The classes, in index order (default: every value found, sorted). Pixels
            of other values are unlabelled.
        tile_size: Tile side in grid pixels.
        stride: Step between tiles (default ``tile_size``).
        ignore_index: Target value of unlabelled pixels.
        all_touched: Rasterise every pixel a polygon touches (default: pixel centres inside).
    """

    def __init__(
        self,
        images: Sequence[ImageSource],
        label_raster: Optional[Union[str, Path]] = None,
        polygons: Optional[Union[str, Path]] = None,
        class_field: Optional[str] = None,
        polygon_layer: Optional[Union[str, int]] = None,
        class_values: Optional[Sequence[Any]] = None,
        tile_size: int = 64,
        stride: Optional[int] = None,
        ignore_index: int = IGNORE_INDEX,
        all_touched: bool = False,
    ):
        if not images:
            raise ValueError("give at least one image source")
        if (label_raster is None) == (polygons is None):
            raise ValueError("give either label_raster or polygons (with class_field), not both")
        sensors = [image.sensor for image in images]
        if len(set(sensors)) != len(sensors):
            raise ValueError(f"one image per sensor, got {sensors}")
        for sensor in sensors:
            get_sensor(sensor)
        self.images = list(images)
        self.sources = {image.sensor: image.band_sources() for image in self.images}
        self.grid = _finest_grid(self.sources[sensors[0]])
        self.tile_size = int(tile_size)
        self.stride = int(stride or tile_size)
        self.ignore_index = ignore_index
        self.polygon_layer: Optional[Union[str, int]] = None
        if label_raster is not None:
            self.label_source = Path(label_raster)
            values = read_class_raster(self.label_source, self.grid)
            found = sorted({float(v) for v in np.unique(values[np.isfinite(values)])})
            found_classes: List[Any] = [int(v) if v.is_integer() else v for v in found]
            classes = list(class_values) if class_values is not None else found_classes
            labels = class_indices(values, classes, ignore_index)
        else:
            if not class_field:
                raise ValueError("polygons need class_field, the attribute holding each class")
            polygon_path, self.polygon_layer = polygon_layer_source(str(polygons), polygon_layer)
            self.label_source = Path(polygon_path)
            burned, polygon_classes = rasterize_polygons(
                self.label_source, class_field, self.grid, self.polygon_layer, all_touched
            )
            classes = list(class_values) if class_values is not None else polygon_classes
            # Polygon class k -> its position in `classes`; the extra last entry is "no polygon".
            lookup = np.full(len(polygon_classes) + 1, ignore_index, dtype=np.int64)
            for k, value in enumerate(polygon_classes):
                if value in classes:
                    lookup[k] = classes.index(value)
            burned_index = np.where(np.isfinite(burned), burned, len(polygon_classes))
            labels = lookup[burned_index.astype(np.int64)]
        if len(classes) >= ignore_index:
            raise ValueError(f"{len(classes)} classes do not fit below ignore_index {ignore_index}")
        self.class_values = classes
        self.class_names = [str(v) for v in classes]
        self.num_classes = len(classes)
        self.labels = labels.astype(np.int32)
        if not (self.labels != ignore_index).any():
            raise ValueError(
                f"no pixel of the image grid is labelled by {self.label_source}; check that it "
                "overlaps the images (and, for polygons, the class field)"
            )
        self.tiles = [
            (row, col)
            for row in tile_origins(self.grid.height, self.tile_size, self.stride)
            for col in tile_origins(self.grid.width, self.tile_size, self.stride)
            if (self._label_window(row, col) != ignore_index).any()
        ]
        self._preloaded: Dict[str, np.ndarray] = {}

    def _label_window(self, row: int, col: int) -> np.ndarray:
        size = self.tile_size
        out = np.full((size, size), self.ignore_index, dtype=np.int64)
        window = self.labels[row : row + size, col : col + size]
        out[: window.shape[0], : window.shape[1]] = window
        return out

    def __len__(self) -> int:
        return len(self.tiles)

    def holdout_units(self) -> List[HoldoutUnit]:
        """Tiles of one grid: a split holds back a contiguous band of them."""
        group = self.label_source.stem
        size = self.tile_size
        return [HoldoutUnit(group, r, c, size, size, self.grid) for r, c in self.tiles]

    def read(self, sensor: str, row: int, col: int) -> np.ndarray:
        """Raw values (C, T, T) of one sensor for the tile at (row, col) of the grid."""
        size = self.tile_size
        grid = self.grid
        if grid.width * grid.height > PRELOAD_MAX_PIXELS:
            return read_window(self.sources[sensor], grid, row, col, size, size)
        if sensor not in self._preloaded:
            self._preloaded[sensor] = read_window(
                self.sources[sensor], grid, 0, 0, grid.height, grid.width
            )
        whole = self._preloaded[sensor]
        out = np.full((whole.shape[0], size, size), np.nan, dtype=np.float32)
        window = whole[:, row : row + size, col : col + size]
        out[:, : window.shape[1], : window.shape[2]] = window
        return out

    def seen_labels(self, index: int, inputs: Optional[Dict[str, np.ndarray]] = None) -> np.ndarray:
        """The label window of tile ``index`` with pixels that no image covers set to ignore.

        A labelled pixel without imagery (the image's no data) is no evidence for its class: a
        model trained on it learns to call no data that class, and a score on it measures that.
        """
        row, col = self.tiles[index]
        labels = self._label_window(row, col)
        if inputs is None:
            inputs = {image.sensor: self.read(image.sensor, row, col) for image in self.images}
        seen = np.ones(labels.shape, dtype=bool)
        for values in inputs.values():
            seen &= np.isfinite(values).all(axis=0)
        return np.where(seen, labels, self.ignore_index)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        row, col = self.tiles[index]
        inputs = {image.sensor: self.read(image.sensor, row, col) for image in self.images}
        return {
            "inputs": inputs,
            "target": self.seen_labels(index, inputs),
            "row": row,
            "col": col,
        }
