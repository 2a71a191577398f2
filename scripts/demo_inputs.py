"""Prepare the demo's input rasters from the real sample data (``make demo``).

Writes into DIR:
- ``landsat_stack.tif``: the six Landsat-7 bands of the land-cover sample in one raster;
- ``s2_cloudy.tif`` / ``s2_clear.tif`` / ``s1.tif``: a BigEarthNet S2 patch (12 bands on the 10 m
  grid) with simulated clouds, its clear original and its Sentinel-1 partner (VV, VH) — the samples
  hold no co-registered S1 for a really cloudy scene, so the clouds are simulated (and said so);
- ``ms_2m.tif``: the SpaceNet MS sample at its true 2 m resolution (the file repeats each pixel
  2 x 2 at a nominal 1 m), beside the 0.5 m PAN used as it is.

Usage: python scripts/demo_inputs.py SAMPLES_DIR OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import rasterio

from backend.data.tasks.bigearthnet import BigEarthNetDataset
from backend.data.tasks.clouds import simulate_clouds

S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
LANDSAT_FILES = ("10", "20", "30", "40", "50", "70")


def write(path: Path, data: np.ndarray, profile: dict, descriptions=None) -> None:
    profile = {**profile, "driver": "GTiff", "count": data.shape[0], "dtype": data.dtype.name}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for index, name in enumerate(descriptions or (), start=1):
            dst.set_band_description(index, name)


def landsat_stack(samples: Path, out: Path) -> None:
    bands, profile = [], None
    for suffix in LANDSAT_FILES:
        with rasterio.open(samples / f"landcover/lsat7_2000_{suffix}.tif") as src:
            bands.append(src.read(1, masked=True).astype(np.float32).filled(np.nan))
            profile = profile or {
                k: src.profile[k] for k in ("crs", "transform", "width", "height")
            }
    names = ["B1", "B2", "B3", "B4", "B5", "B7"]
    write(out / "landsat_stack.tif", np.stack(bands), {**profile, "nodata": np.nan}, names)


def cloudy_s2_with_sar(samples: Path, out: Path) -> None:
    root = samples / "bigearthnet"
    dataset = BigEarthNetDataset(root / "S2", root / "S1")
    sample = dataset[0]
    clear, sar = sample["inputs"]["s2"], sample["inputs"]["sar"]
    cloudy, _, mask = simulate_clouds(clear, S2_BANDS, seed=7)
    with rasterio.open(next((root / "S2" / sample["patch"]).glob("*_B02.tif"))) as ref:
        profile = {k: ref.profile[k] for k in ("crs", "transform", "width", "height")}
    profile["nodata"] = np.nan
    write(out / "s2_cloudy.tif", cloudy.astype(np.float32), profile, S2_BANDS)
    write(out / "s2_clear.tif", clear.astype(np.float32), profile, S2_BANDS)
    write(out / "s1.tif", sar.astype(np.float32), profile, ("VV", "VH"))
    info = {"patch": sample["patch"], "cloud_fraction": float(mask.mean()), "clouds": "simulated"}
    (out / "s2_cloudy.json").write_text(json.dumps(info, indent=2))


def ms_at_true_resolution(samples: Path, out: Path) -> None:
    with rasterio.open(samples / "pan_ms/ms1.tif") as src:
        data = src.read()[:, ::2, ::2]
        transform = src.transform * rasterio.Affine.scale(2)
        profile = {"crs": src.crs, "transform": transform, "width": data.shape[2]}
        profile.update(height=data.shape[1], nodata=src.nodata)
    write(out / "ms_2m.tif", data, profile, ("B", "G", "R", "NIR"))


def main(samples: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    landsat_stack(samples, out)
    cloudy_s2_with_sar(samples, out)
    ms_at_true_resolution(samples, out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
