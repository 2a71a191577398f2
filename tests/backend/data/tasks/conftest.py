"""Real sample data arranged in the published layouts the task datasets read.

Each fixture copies or derives files from the fetched samples (``sample_data``) into a temporary
folder laid out like the real dataset; what is derived (and how) is said where it is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import pytest

from backend.data.layouts import L1C_BAND_ORDER
from backend.data.tasks.bigearthnet import BigEarthNetDataset
from backend.data.tasks.clouds import CloudSettings, simulate_clouds
from backend.data.tasks.isprs import encode_label_colors

B10_MARKER = 12345  # value written into B10 so a test can see it is dropped


def write_tif(path: Path, values: np.ndarray, crs, transform, nodata=None) -> Path:
    """Write (C, H, W) values as a GeoTIFF."""
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": values.shape[2],
        "height": values.shape[1],
        "count": values.shape[0],
        "dtype": values.dtype.name,
        "crs": crs,
        "transform": transform,
    }
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(values)
    return path


@pytest.fixture(scope="session")
def bigearthnet_root(sample_data: Path) -> Path:
    """The BigEarthNet example folder (``S1/`` and ``S2/`` patch folders, published layout)."""
    return sample_data / "bigearthnet"


@pytest.fixture(scope="session")
def bigearthnet_pairs(bigearthnet_root: Path) -> BigEarthNetDataset:
    """The 6 BigEarthNet S2 + S1 pairs."""
    return BigEarthNetDataset(bigearthnet_root / "S2", bigearthnet_root / "S1")


@pytest.fixture(scope="session")
def sen12mscr_root(tmp_path_factory, bigearthnet_pairs, bigearthnet_root) -> Dict[str, object]:
    """A SEN12MS-CR folder made of the 6 real BigEarthNet S2/S1 pairs.

    Clear S2: the patch's 12 bands on the 10 m grid (rounded to uint16 like SEN12MS-CR) with B10
    inserted as a constant marker; S1: its BigEarthNet-S1 partner (VV, VH dB). Cloudy S2: the clear
    image under simulated clouds (seed = patch number), since no real SEN12MS-CR is available.
    Patches 1-3 are scene 1, patches 4-6 scene 2 of ``ROIs1158_spring``.
    """
    import rasterio

    root = tmp_path_factory.mktemp("sen12mscr")
    masks = {}
    clears = {}
    for index in range(len(bigearthnet_pairs)):
        sample = bigearthnet_pairs[index]
        patch = sample["patch"]
        b02 = next((bigearthnet_root / "S2" / patch).glob("*_B02.tif"))
        with rasterio.open(b02) as reference:
            crs, transform = reference.crs, reference.transform
        clear12 = np.round(sample["inputs"]["s2"])
        clear13 = np.insert(clear12, L1C_BAND_ORDER.index("B10"), B10_MARKER, axis=0)
        cloudy13, _, mask = simulate_clouds(
            clear13, L1C_BAND_ORDER, seed=index, settings=CloudSettings(coverage=0.35)
        )
        scene, number = 1 + index // 3, index + 1
        name = f"ROIs1158_spring_{{kind}}_{scene}_p{number}.tif"
        write_tif(
            root / "ROIs1158_spring_s1" / f"s1_{scene}" / name.format(kind="s1"),
            sample["inputs"]["sar"].astype(np.float32),
            crs,
            transform,
        )
        write_tif(
            root / "ROIs1158_spring_s2" / f"s2_{scene}" / name.format(kind="s2"),
            clear13.astype(np.uint16),
            crs,
            transform,
        )
        write_tif(
            root
            / "ROIs1158_spring_s2_cloudy"
            / f"s2_cloudy_{scene}"
            / name.format(kind="s2_cloudy"),
            np.round(cloudy13).astype(np.uint16),
            crs,
            transform,
        )
        patch_id = f"ROIs1158_spring_{scene}_p{number}"
        masks[patch_id] = mask
        clears[patch_id] = clear12
    return {"root": root, "masks": masks, "clears": clears, "b10_marker": B10_MARKER}


def olinda_area_rule(irrg: np.ndarray, dsm: np.ndarray) -> np.ndarray:
    """Class indexes from a simple NDVI/elevation rule. NOT ground truth: it only gives the ISPRS
    reader a plausible colour-coded label image to read (bright water -> clutter, vegetation by
    NDVI, high bare ground -> building, the rest impervious; no cars)."""
    nir, red = irrg[0].astype(np.float64), irrg[1].astype(np.float64)
    ndvi = (nir - red) / np.maximum(nir + red, 1.0)
    labels = np.zeros(nir.shape, dtype=np.int64)  # impervious surfaces
    labels[(ndvi <= 0.1) & (dsm > np.nanpercentile(dsm, 70))] = 1  # building
    labels[(ndvi > 0.1) & (ndvi <= 0.3)] = 2  # low vegetation
    labels[ndvi > 0.3] = 3  # tree
    labels[ndvi < -0.2] = 5  # clutter (water in this scene)
    return labels


@pytest.fixture(scope="session")
def isprs_root(tmp_path_factory, sample_data: Path) -> Dict[str, object]:
    """A Vaihingen-style folder made from the stars Landsat-7 scene + the Olinda SRTM DEM.

    Areas 1 and 3 are the left and right halves of the scene. ``top``: Landsat bands 4, 3, 2 as
    IR-R-G (uint8); ``dsm``: the DEM resampled bilinearly onto the Landsat grid; labels: the colours
    of :func:`olinda_area_rule` (not ground truth), with a 40 x 40 block of black (an unknown
    colour, the benchmark's boundary colour) at the top-left of area 1.
    """
    import rasterio
    from rasterio.warp import Resampling, reproject

    root = tmp_path_factory.mktemp("vaihingen")
    folder = sample_data / "multispectral_dem"
    with rasterio.open(folder / "L7_ETMs.tif") as landsat:
        bands = landsat.read()
        crs, transform = landsat.crs, landsat.transform
    irrg = bands[[3, 2, 1]]
    dsm = np.full(irrg.shape[1:], np.nan, dtype=np.float32)
    with rasterio.open(folder / "olinda_dem_utm25s.tif") as dem:
        reproject(
            rasterio.band(dem, 1),
            dsm,
            dst_transform=transform,
            dst_crs=crs,
            dst_nodata=np.nan,
            resampling=Resampling.bilinear,
        )
    labels = olinda_area_rule(irrg, dsm)
    half = irrg.shape[2] // 2
    areas = {"1": (0, half), "3": (half, irrg.shape[2])}
    expected = {}
    for area, (first, last) in areas.items():
        area_transform = transform * transform.translation(first, 0)
        colours = encode_label_colors(labels[:, first:last])
        area_labels = labels[:, first:last].copy()
        if area == "1":
            colours[:, :40, :40] = 0
            area_labels[:40, :40] = 255
        write_tif(
            root / "top" / f"top_mosaic_09cm_area{area}.tif",
            np.ascontiguousarray(irrg[:, :, first:last]),
            crs,
            area_transform,
        )
        write_tif(
            root / "dsm" / f"dsm_09cm_matching_area{area}.tif",
            np.ascontiguousarray(dsm[None, :, first:last]),
            crs,
            area_transform,
        )
        write_tif(
            root / "gts_for_participants" / f"top_mosaic_09cm_area{area}.tif",
            colours,
            crs,
            area_transform,
        )
        expected[area] = {
            "irrg": irrg[:, :, first:last],
            "dsm": dsm[:, first:last],
            "labels": area_labels,
        }
    return {"root": root, "expected": expected}
