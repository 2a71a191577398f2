"""Sentinel-1 backscatter in linear power is converted to dB; dB stays as it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from backend.products import harmonise

from .conftest import read

PATCH = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"


def _db(sample_data: Path, polarisation: str):
    path = sample_data / "bigearthnet" / "S1" / PATCH / f"{PATCH}_{polarisation}.tif"
    with rasterio.open(path) as dataset:
        return dataset.read(1).astype(np.float64), dataset.profile


def _write(path: Path, bands, profile, names=()):
    profile = {**profile, "count": len(bands), "dtype": "float32", "driver": "GTiff"}
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(np.stack(bands).astype(np.float32))
        for index, name in enumerate(names, start=1):
            dataset.set_band_description(index, name)
    return path


@pytest.fixture
def linear_pair(sample_data, tmp_path):
    """The BigEarthNet S1 patch in linear power, with a zero and a negative pixel."""
    vv, profile = _db(sample_data, "VV")
    vh, _ = _db(sample_data, "VH")
    bands = [10 ** (vv / 10), 10 ** (vh / 10)]
    for band in bands:
        band[0, 0] = 0.0
        band[0, 1] = -1e-4
    return bands, (vv, vh), profile


def test_linear_power_stack_becomes_db(linear_pair, tmp_path, workdir):
    linear, db, profile = linear_pair
    path = _write(tmp_path / "scene_linear.tif", linear, profile, ("VV", "VH"))
    result = harmonise(path, workdir)
    assert result.units == "sigma0 dB"
    assert result.band_names == ("VV", "VH")
    assert any("linear power to dB" in note for note in result.notes)
    values = read(result.path)
    expected = np.stack(db)
    expected[:, 0, :2] = np.nan  # zero and negative power are nodata, not -inf or |x|
    np.testing.assert_array_equal(np.isnan(values), np.isnan(expected))
    np.testing.assert_allclose(values, expected, atol=1e-4)


def test_linear_power_by_file_name(linear_pair, tmp_path, workdir):
    linear, db, profile = linear_pair
    path = _write(tmp_path / f"{PATCH}_VV.tif", linear[:1], profile)
    result = harmonise(path, workdir)
    assert result.units == "sigma0 dB"
    np.testing.assert_allclose(read(result.path)[0, 1:, :], db[0][1:, :], atol=1e-4)


def test_separate_linear_files_are_stacked_then_converted(linear_pair, tmp_path, workdir):
    linear, db, profile = linear_pair
    files = [
        _write(tmp_path / f"{PATCH}_{name}.tif", [band], profile)
        for name, band in zip(("VV", "VH"), linear)
    ]
    result = harmonise(files, workdir)
    assert result.band_names == ("VV", "VH") and result.units == "sigma0 dB"
    np.testing.assert_allclose(read(result.path)[:, 1:, :], np.stack(db)[:, 1:, :], atol=1e-4)


def test_db_is_left_alone(sample_data, workdir):
    path = sample_data / "bigearthnet" / "S1" / PATCH / f"{PATCH}_VV.tif"
    result = harmonise(path, workdir)
    assert result.path == str(path)
    assert result.units is None
    assert not result.notes


def test_optical_values_below_one_are_not_sar(linear_pair, tmp_path, workdir):
    linear, _, profile = linear_pair
    path = _write(tmp_path / "reflectance.tif", linear, profile, ("red", "nir"))
    assert harmonise(path, workdir).path == str(path)
