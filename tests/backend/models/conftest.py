"""Real sample crops for the model tests, normalised with the sensor registry.

- ``bigearthnet_pairs``: the 6 BigEarthNet S2 L2A / S1 patch pairs (co-registered, 120x120 at 10 m;
  20 m and 60 m bands resampled bilinearly onto the 10 m grid), cropped to 96x96.
- ``rgb_crops`` / ``dsm_crops``: 96x96 crops of the SpaceNet-6 RGB (solaris rgb_unmasked.tif) and
  the LiDAR DEM (lidar dem.tif).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from backend.sensors import get_sensor, normalize, select_bands

CROP = 96


def _samples_root(sample_data: Path) -> Path:
    return sample_data / "samples" if (sample_data / "samples").is_dir() else sample_data


def _read_band_files(folder: Path, sensor_name: str, size: int) -> np.ndarray:
    import rasterio
    from rasterio.enums import Resampling

    files = sorted(folder.glob("*.tif"))
    indexes = select_bands(sensor_name, [f.name for f in files])
    bands = []
    for i in indexes:
        with rasterio.open(files[i]) as dataset:
            bands.append(
                dataset.read(1, out_shape=(size, size), resampling=Resampling.bilinear).astype(
                    np.float32
                )
            )
    return np.stack(bands)


def _crops(image: np.ndarray, count: int, size: int = CROP) -> np.ndarray:
    # Evenly spread, overlapping-free-as-possible crops along the diagonal of the raster.
    _, H, W = image.shape
    rows = np.linspace(0, H - size, count).astype(int)
    cols = np.linspace(0, W - size, count).astype(int)
    return np.stack([image[:, r : r + size, c : c + size] for r, c in zip(rows, cols)])


@pytest.fixture(scope="session")
def samples_root(sample_data: Path) -> Path:
    return _samples_root(sample_data)


@pytest.fixture(scope="session")
def bigearthnet_pairs(samples_root: Path) -> Dict[str, np.ndarray]:
    """Normalised ``{"s2": (6, 12, 96, 96), "sar": (6, 2, 96, 96)}`` co-registered pairs."""
    root = samples_root / "bigearthnet"
    s2: List[np.ndarray] = []
    sar: List[np.ndarray] = []
    for s1_folder in sorted((root / "S1").iterdir()):
        meta = json.loads(next(s1_folder.glob("*_labels_metadata.json")).read_text())
        s2_folder = root / "S2" / meta["corresponding_s2_patch"]
        s2.append(normalize("s2", _read_band_files(s2_folder, "s2", 120))[:, 12:108, 12:108])
        sar.append(normalize("sar", _read_band_files(s1_folder, "sar", 120))[:, 12:108, 12:108])
    return {"s2": np.stack(s2), "sar": np.stack(sar)}


@pytest.fixture(scope="session")
def rgb_crops(samples_root: Path) -> np.ndarray:
    """Normalised (4, 3, 96, 96) crops of the SpaceNet-6 RGB image."""
    import rasterio

    with rasterio.open(samples_root / "sar_rgb" / "rgb_unmasked.tif") as dataset:
        image = dataset.read().astype(np.float32)
    assert image.shape[0] == get_sensor("rgb").num_bands
    return normalize("rgb", _crops(image, 4))


@pytest.fixture(scope="session")
def dsm_crops(samples_root: Path) -> np.ndarray:
    """Per-tile normalised (4, 1, 96, 96) crops of the LiDAR DEM."""
    import rasterio

    with rasterio.open(samples_root / "dem" / "dem.tif") as dataset:
        image = dataset.read(1, masked=True).filled(np.nan)[None].astype(np.float32)
    crops = _crops(image, 4)
    assert np.isfinite(crops).all(), "DEM crops must avoid nodata"
    return normalize("dsm", crops)
