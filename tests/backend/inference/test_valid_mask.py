"""The valid-pixel mask computed from the nodata value equals the one GDAL's mask bands give."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from backend.inference.inputs import OpenedInput, RasterInput

# Real sample rasters, one per (data type, nodata, mask kind) found in the samples.
SAMPLES = [
    "dem/dem.tif",  # float32, nodata -3.4e38
    "dem/rmnp-dem.tif",  # uint16, nodata 65535
    "landcover/lsat7_2000_10.tif",  # float32, nodata -99999
    "landcover/lsat7_2000_70.tif",  # int16, nodata -32768
    "landsat_timeseries/LE70350322008118EDC00/LE70350322008118EDC00_b3.tif",  # int16, -9999
    "rgb/OSBS_029.tif",  # uint8, nodata 255
    "rgb/rmnp-rgb.tif",  # uint8 x 3, nodata 255
    "pan_ms/pan1.tif",  # uint16, no nodata
    "pan_ms/ms1.tif",  # float64, no nodata: GDAL's masks are read
]


def masks(path, window=None):
    """(valid from the engine's rule, valid from GDAL's mask bands), over ``window``."""
    with rasterio.open(path) as dataset:
        item = OpenedInput(RasterInput("s2", path), None, dataset, dataset)
        h, w = (dataset.height, dataset.width) if window is None else window
        _, fast = item.read_window(0, 0, h, w)
        rule = item.mask_rule
        item.mask_rule = None  # force the mask-band read
        _, slow = item.read_window(0, 0, h, w)
    return fast, slow, rule


@pytest.mark.parametrize("relative", SAMPLES)
def test_mask_from_nodata_equals_gdal_mask_on_samples(sample_data, relative):
    fast, slow, rule = masks(sample_data / relative)
    np.testing.assert_array_equal(fast, slow)
    if relative.endswith("ms1.tif"):
        assert rule is None  # float64 values are not exact in float32: GDAL decides
    else:
        assert rule is not None


def write(path, values, dtype, nodata, **extra):
    profile = {
        "driver": "GTiff",
        "width": values.shape[-1],
        "height": values.shape[-2],
        "count": values.shape[0],
        "dtype": dtype,
        "nodata": nodata,
        # Georeferenced, though masks do not depend on it: a file without is warned about.
        "crs": "EPSG:32633",
        "transform": rasterio.transform.from_origin(500000.0, 5000000.0, 10.0, 10.0),
        **extra,
    }
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(values.astype(dtype))
    return path


@pytest.mark.parametrize(
    ("dtype", "nodata"),
    [
        ("float32", 0.0),  # exact: 1e-12 is valid, -0.0 is nodata
        ("float32", float("nan")),
        ("float32", -9999.0),
        ("uint8", 0),
        ("int16", -1),
        ("uint16", 2.5),  # not an integer: left to GDAL
    ],
)
def test_mask_from_nodata_equals_gdal_mask_on_edge_values(tmp_path, dtype, nodata):
    rng = np.random.default_rng(0)
    low = -1 if dtype.startswith("int") else 0
    values = rng.integers(low, 4, size=(2, 40, 50)).astype(np.float64)
    if dtype == "float32":
        values[0, 0, :6] = [1e-12, -1e-11, -0.0, 1e-45, np.inf, np.nan]  # near 0, non-finite
        values[1, 10] = -9999.0
    fast, slow, _ = masks(write(tmp_path / "edge.tif", values, dtype, nodata))
    np.testing.assert_array_equal(fast, slow)
    assert 0 < slow.sum() < slow.size


def test_shared_nodata_uses_the_rule_and_an_internal_mask_reads_gdal_masks(tmp_path):
    values = np.arange(2 * 20 * 30, dtype=np.float64).reshape(2, 20, 30) % 7
    path = write(tmp_path / "per_band.tif", values, "uint8", 0)
    fast, slow, rule = masks(path)
    np.testing.assert_array_equal(fast, slow)
    assert rule is not None  # both bands share nodata 0: the rule applies
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        masked = tmp_path / "masked.tif"
        write(masked, values, "uint8", None)
        with rasterio.open(masked, "r+") as dataset:
            mask = np.full((20, 30), 255, np.uint8)
            mask[:5] = 0
            dataset.write_mask(mask)
    fast, slow, rule = masks(masked)
    assert rule is None  # a per-dataset mask is read from GDAL
    np.testing.assert_array_equal(fast, slow)
    assert not slow[:5].any() and slow[5:].all()
