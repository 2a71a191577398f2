"""A long run says, after its first batch, how long it will take and how much disk it needs."""

from __future__ import annotations

import pytest

from msgfm_qgis.run_estimate import RunEstimate, duration, file_size, output_bytes
from msgfm_qgis.runner import InferenceJob


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def job_on(model, raster, tmp_path) -> InferenceJob:
    return InferenceJob(
        model=str(model),
        inputs=[{"sensor": "rgb", "path": str(raster), "bands": [1, 2, 3]}],
        out=str(tmp_path / "out.tif"),
    )


def test_a_long_run_is_announced_once_with_time_and_size(probability_model, sample_data, tmp_path):
    from osgeo import gdal

    raster = sample_data / "sar_rgb/rgb_unmasked.tif"
    dataset = gdal.Open(str(raster))
    width, height = dataset.RasterXSize, dataset.RasterYSize
    clock = Clock()
    estimate = RunEstimate(job_on(probability_model, raster, tmp_path), clock)
    assert estimate.observe(0.0, "Opening the model") is None
    clock.now += 30.0  # opening and reading: not tiles
    assert estimate.observe(0.0, "Reading the inputs") is None
    clock.now += 2.0  # the first batch: 4 tiles in 2 s
    told = estimate.observe(4 / 1000, "4/1000 tiles (0 skipped as nodata)")
    # 1000 tiles at 0.5 s: 500 s. The pixel classifier outputs 3 float32 probability bands per
    # pixel.
    size = width * height * 3 * 4
    assert output_bytes(estimate.job) == size
    assert told == (
        f"Long run: 1,000 tiles at 0.5 s per tile (measured so far): about 8 min in all; "
        f"the outputs take up to {file_size(size)} on disk"
    )
    clock.now += 60.0
    assert estimate.observe(8 / 1000, "8/1000 tiles (0 skipped as nodata)") is None  # once


def test_a_short_run_says_nothing(tmp_path):
    clock = Clock()
    estimate = RunEstimate(None, clock)
    estimate.observe(0.0, "Reading the inputs")
    clock.now += 1.0
    assert estimate.observe(4 / 40, "4/40 tiles (0 skipped as nodata)") is None  # 10 s in all


@pytest.mark.parametrize(
    "seconds, text", [(40, "40 s"), (500, "8 min"), (5400, "1.5 h"), (86400, "24.0 h")]
)
def test_durations_read_as_people_say_them(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize(
    "size, text", [(512, "512 B"), (2_500_000, "2.5 MB"), (820e6, "820 MB"), (3.4e9, "3.4 GB")]
)
def test_sizes_read_as_people_say_them(size, text):
    assert file_size(size) == text


def test_reflectance_is_counted_in_the_type_the_engine_writes(tmp_path):
    # The bundled cloud-removal model writes reflectance in the integer type of its Sentinel-2
    # layer (uint16: 2 bytes a value), float32 for a float layer or on request.
    from pathlib import Path

    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    from backend.export.schema import read_model_metadata

    model = Path(__file__).parents[2] / "resources/models/cloud-removal.onnx"
    assert model.is_file()
    bands = len(read_model_metadata(model).outputs[0].bands)
    sizes = {}
    for dtype in ("uint16", "float32"):
        path = tmp_path / f"s2_{dtype}.tif"
        profile = {"driver": "GTiff", "width": 64, "height": 48, "count": 12, "dtype": dtype}
        profile.update(crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10), nodata=0)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.ones((12, 48, 64), dtype=dtype))
        for stored in ("input", "float32"):
            job = InferenceJob(
                model=str(model),
                inputs=[{"sensor": "s2", "path": str(path)}, {"sensor": "sar", "path": str(path)}],
                out=str(tmp_path / "out.tif"),
                extra={"reflectance_dtype": stored},
            )
            sizes[dtype, stored] = output_bytes(job)
    cells = 64 * 48 * bands
    assert sizes == {
        ("uint16", "input"): cells * 2,
        ("uint16", "float32"): cells * 4,
        ("float32", "input"): cells * 4,
        ("float32", "float32"): cells * 4,
    }
