"""ISPRS 2D semantic labelling (Vaihingen / Potsdam style): image + DSM + colour-coded label tiles.

Vaihingen layout, one area per file triple::

    top/top_mosaic_09cm_area<N>.tif                     true orthophoto, IR-R-G (8 bit)
    dsm/dsm_09cm_matching_area<N>.tif                   digital surface model (m, float32)
    gts_for_participants/top_mosaic_09cm_area<N>.tif    labels as RGB colours

The three rasters of an area are on one pixel grid by construction ("matching"), so they are read
pixel for pixel; a size mismatch is an error. Label colours are the benchmark's six classes (see
``ISPRS_CLASSES``); any other colour (e.g. the black boundary of the ``*_noBoundary`` references)
becomes ``ignore_index``. The image's three bands go to the ``rgb`` sensor slot as they are
(IR, R, G for Vaihingen), as is usual when finetuning an RGB embedding on Vaihingen.

Samples are tiles: ``{"inputs": {"rgb": float32 (3, T, T), "dsm": float32 (1, T, T)}, "target":
int64 (T, T), "area": N, "row": r, "col": c}``; tiles whose label is all ``ignore_index`` are left
out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ...conventions import IGNORE_INDEX
from ..raster import Grid, read_grid
from .windows import HoldoutUnit, tile_origins

# (class name, RGB colour) in class-index order, as the ISPRS benchmark defines them.
ISPRS_CLASSES: Tuple[Tuple[str, Tuple[int, int, int]], ...] = (
    ("impervious surfaces", (255, 255, 255)),
    ("building", (0, 0, 255)),
    ("low vegetation", (0, 255, 255)),
    ("tree", (0, 255, 0)),
    ("car", (255, 255, 0)),
    ("clutter/background", (255, 0, 0)),
)


@dataclass(frozen=True)
class ISPRSLayout:
    """File patterns of an ISPRS-style dataset; ``{area}`` is replaced by the area id."""

    image: str
    dsm: str
    label: str


VAIHINGEN = ISPRSLayout(
    image="top/top_mosaic_09cm_area{area}.tif",
    dsm="dsm/dsm_09cm_matching_area{area}.tif",
    label="gts_for_participants/top_mosaic_09cm_area{area}.tif",
)


def decode_label_colors(rgb: np.ndarray, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Class indexes (int64 (H, W)) of an RGB label image (3, H, W); unknown colours are ignored."""
    if rgb.ndim != 3 or rgb.shape[0] < 3:
        raise ValueError(f"an ISPRS label image has 3 colour bands, got shape {rgb.shape}")
    rgb = rgb[:3].astype(np.int64)
    code = (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
    labels = np.full(code.shape, ignore_index, dtype=np.int64)
    for index, (_, (r, g, b)) in enumerate(ISPRS_CLASSES):
        labels[code == ((r << 16) | (g << 8) | b)] = index
    return labels


def encode_label_colors(labels: np.ndarray) -> np.ndarray:
    """RGB label image (uint8 (3, H, W)) of class indexes; indexes outside the classes are black."""
    rgb = np.zeros((3, *labels.shape), dtype=np.uint8)
    for index, (_, colour) in enumerate(ISPRS_CLASSES):
        for band in range(3):
            rgb[band][labels == index] = colour[band]
    return rgb


def find_areas(root: Path, layout: ISPRSLayout) -> List[str]:
    """Area ids whose image, DSM and label files all exist, in natural order."""
    pattern = re.compile("^" + re.escape(layout.image).replace(re.escape("{area}"), "(.+)") + "$")
    areas = []
    for path in root.glob(layout.image.replace("{area}", "*")):
        match = pattern.match(path.relative_to(root).as_posix())
        if match is None:
            continue
        area = match.group(1)
        if (root / layout.dsm.format(area=area)).is_file() and (
            root / layout.label.format(area=area)
        ).is_file():
            areas.append(area)
    return sorted(
        areas, key=lambda a: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", a)]
    )


def _grid_or_none(path: Path) -> Optional[Grid]:
    """The raster's grid, or None for an image without a CRS (ISPRS tiles are not georeferenced)."""
    try:
        return read_grid(str(path))
    except ValueError:
        return None


def _read_window(path: Path, row: int, col: int, height: int, width: int) -> np.ndarray:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(path) as dataset:
        inside = row + height <= dataset.height and col + width <= dataset.width
        values = dataset.read(
            window=Window(col, row, width, height), boundless=not inside, masked=True
        )
    return values


class ISPRSDataset:
    """Tiles of ISPRS-style areas for land-cover segmentation (see the module docstring).

    Args:
        root: Dataset folder.
        areas: Area ids to use (default: every complete area found).
        tile_size: Tile side in pixels.
        stride: Step between tiles (default ``tile_size``).
        layout: File patterns (default :data:`VAIHINGEN`).
        ignore_index: Target value of unlabelled pixels.
        image_sensor: Sensor slot of the image bands (``rgb``).
    """

    num_classes = len(ISPRS_CLASSES)
    class_names = tuple(name for name, _ in ISPRS_CLASSES)

    def __init__(
        self,
        root: Union[str, Path],
        areas: Optional[Sequence[Union[str, int]]] = None,
        tile_size: int = 256,
        stride: Optional[int] = None,
        layout: ISPRSLayout = VAIHINGEN,
        ignore_index: int = IGNORE_INDEX,
        image_sensor: str = "rgb",
    ):
        import rasterio

        self.root = Path(root)
        self.layout = layout
        self.tile_size = int(tile_size)
        self.stride = int(stride or tile_size)
        self.ignore_index = ignore_index
        self.image_sensor = image_sensor
        self.areas = [str(a) for a in areas] if areas is not None else find_areas(self.root, layout)
        if not self.areas:
            raise ValueError(
                f"no ISPRS areas under {self.root}: expected {layout.image}, {layout.dsm} and "
                f"{layout.label} with the same area id"
            )
        self.tiles: List[Tuple[str, int, int]] = []
        for area in self.areas:
            paths = self._paths(area)
            shapes = []
            for path in paths:
                if not path.is_file():
                    raise FileNotFoundError(f"ISPRS area {area}: {path} does not exist")
                with rasterio.open(path) as dataset:
                    shapes.append((dataset.height, dataset.width))
            if len(set(shapes)) != 1:
                raise ValueError(
                    f"ISPRS area {area}: image, DSM and label sizes differ {shapes}; the layout "
                    "requires matching rasters (resample the DSM onto the image grid)"
                )
            height, width = shapes[0]
            with rasterio.open(paths[2]) as dataset:
                labels = decode_label_colors(dataset.read(), ignore_index)
            for row in tile_origins(height, self.tile_size, self.stride):
                for col in tile_origins(width, self.tile_size, self.stride):
                    window = labels[row : row + self.tile_size, col : col + self.tile_size]
                    if (window != ignore_index).any():
                        self.tiles.append((area, row, col))
        if not self.tiles:
            raise ValueError(f"every tile of {self.root} is unlabelled (label colours unknown?)")

    def _paths(self, area: str) -> Tuple[Path, Path, Path]:
        return (
            self.root / self.layout.image.format(area=area),
            self.root / self.layout.dsm.format(area=area),
            self.root / self.layout.label.format(area=area),
        )

    def __len__(self) -> int:
        return len(self.tiles)

    def holdout_units(self) -> List[HoldoutUnit]:
        """Each area is a group; tiles are windows of it (placed on the ground when the image is
        georeferenced)."""
        grids = {
            area: _grid_or_none(self._paths(area)[0]) for area in {a for a, _, _ in self.tiles}
        }
        size = self.tile_size
        return [HoldoutUnit(a, r, c, size, size, grids[a]) for a, r, c in self.tiles]

    def __getitem__(self, index: int) -> Dict[str, Any]:
        area, row, col = self.tiles[index]
        image_path, dsm_path, label_path = self._paths(area)
        size = self.tile_size
        image = _read_window(image_path, row, col, size, size)
        dsm = _read_window(dsm_path, row, col, size, size)
        label_rgb = _read_window(label_path, row, col, size, size)
        target = decode_label_colors(label_rgb.filled(0), self.ignore_index)
        target[np.ma.getmaskarray(label_rgb).any(axis=0)] = self.ignore_index
        return {
            "inputs": {
                self.image_sensor: image[:3].astype(np.float32).filled(np.nan),
                "dsm": dsm[:1].astype(np.float32).filled(np.nan),
            },
            "target": target,
            "area": area,
            "row": row,
            "col": col,
        }
