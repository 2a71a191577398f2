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


@pytest.mark.parametrize(
    ("dtype", "nodata", "wrapped", "gdal_masks_it"),
    [
        ("uint16", -1.0, 65535, False),
        ("uint8", 300.0, 44, False),
        # GDAL 3.6 keeps a signed byte's nodata as the unsigned byte (200 is -56) and rasterio
        # reports no nodata for it: its masks are read from GDAL.
        ("int8", 200.0, -56, True),
    ],
)
def test_nodata_outside_the_type_masks_as_gdal_does(
    tmp_path, dtype, nodata, wrapped, gdal_masks_it
):
    # GDAL 3.6 drops an unsigned type's nodata that the type cannot hold (all valid), and keeps a
    # signed byte's as its unsigned byte: either way the engine's mask must be GDAL's.
    from osgeo import gdal

    values = np.arange(2 * 20 * 30, dtype=np.float64).reshape(2, 20, 30) % 100
    values[:, 3, :7] = wrapped  # what the nodata would become if cast into the type
    path = write(tmp_path / "outside.tif", values, dtype, None)
    dataset = gdal.Open(str(path), gdal.GA_Update)
    for band in range(1, 3):
        dataset.GetRasterBand(band).SetNoDataValue(nodata)
    dataset = None
    fast, slow, _ = masks(path)
    np.testing.assert_array_equal(fast, slow)
    assert (fast.sum() == fast.size - 7) if gdal_masks_it else fast.all()


@pytest.mark.parametrize("relative", ["rgb/rmnp-rgb.tif", "pan_ms/pan1.tif", "dem/dem.tif"])
def test_windows_are_read_in_the_file_type_into_reused_arrays(sample_data, relative):
    from backend.inference.scratch import Scratch

    path = sample_data / relative
    with rasterio.open(path) as dataset:
        item = OpenedInput(RasterInput("s2", path), None, dataset, dataset)
        scratch = Scratch()
        values, valid = item.read_raw(3, 5, 17, 23, scratch)
        assert values.dtype == np.dtype(dataset.dtypes[0])  # no conversion pass
        expected = dataset.read(window=((3, 20), (5, 28)))
        np.testing.assert_array_equal(values, expected)
        floats, float_valid = item.read_window(3, 5, 17, 23)
        assert floats.dtype == np.float32
        np.testing.assert_array_equal(floats, expected.astype(np.float32))
        np.testing.assert_array_equal(float_valid, valid)
        again, _ = item.read_raw(0, 0, 17, 23, scratch)
        assert np.shares_memory(again, values)  # the same memory for the next window


def test_a_nodata_the_type_cannot_hold_never_wraps_onto_a_value():
    # Windows are read in the file's own integer type: a nodata no value of it can equal (a VRT
    # may declare one) must match no pixel, not wrap around onto a real value.
    from backend.inference.inputs import _in_type

    assert _in_type(np.float32(-1), np.dtype("uint16")) is None
    assert _in_type(np.float32(300), np.dtype("uint8")) is None
    assert _in_type(np.float32(-129), np.dtype("int8")) is None
    assert _in_type(np.float32(65535), np.dtype("uint16")) == np.uint16(65535)
    assert _in_type(np.float32(-32768), np.dtype("int16")) == np.int16(-32768)
    assert _in_type(None, np.dtype("uint16")) is None
    nan = _in_type(np.float32("nan"), np.dtype("float32"))
    assert nan.dtype == np.float32 and np.isnan(nan)
