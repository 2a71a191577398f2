"""Landsat Collection 2 Level-1 and Level-2 products read through their MTL."""

from __future__ import annotations

import numpy as np
import pytest

from backend.products import ProductError, harmonise
from backend.products.landsat import parse_mtl
from backend.sensors import get_sensor, select_bands

from .conftest import read


def test_level1_is_dn_of_the_landsat8_sensor(landsat_products, workdir):
    result = harmonise(landsat_products["l1"], workdir)
    assert result.sensor == "landsat8"
    assert result.units == get_sensor("landsat8").units
    assert result.band_names == ("B1", "B2", "B3", "B4", "B5", "B6", "B7")  # not the 15 m pan B8
    assert result.wavelengths_nm == get_sensor("landsat8").wavelengths_nm
    assert "Collection 2 Level-1" in result.product
    values = read(result.path)
    dn = read(str(next(landsat_products["l1"].glob("*_B4.TIF"))))[0]
    np.testing.assert_array_equal(values[3], np.where(dn > 0, dn, np.nan))


def test_level2_is_scaled_to_reflectance_and_never_looks_like_dn(landsat_products, workdir):
    level1 = harmonise(landsat_products["l1"], workdir)
    level2 = harmonise(next(landsat_products["l2"].glob("*_MTL.xml")), workdir)
    assert level2.sensor == "landsat8_sr" != level1.sensor
    assert level2.units == "reflectance x 10000" == get_sensor("landsat8_sr").units
    assert level2.band_names == tuple(f"SR_B{n}" for n in range(1, 8))
    assert select_bands("landsat8_sr", level2.band_names) == list(range(7))
    assert any("2.75e-05" in note and "-0.2" in note for note in level2.notes)
    # The fixture's Level-2 DN encode the Level-1 TOA reflectance (DN * 2e-5 - 0.1): the scaled
    # values must be that reflectance x 10000, to the Level-2 DN rounding (0.275 / 2).
    dn = read(level1.path)
    expected = (dn * 2.0e-05 - 0.1) * 10000
    values = read(level2.path)
    np.testing.assert_array_equal(np.isnan(values), np.isnan(expected))
    np.testing.assert_allclose(values, expected, atol=0.1376)
    assert np.isnan(values[:, 0, 0]).all()


def test_one_band_file_opens_its_product(landsat_products, workdir):
    band = next(landsat_products["l7"].glob("*_B3.TIF"))
    result = harmonise(band, workdir)
    assert result.sensor == "landsat"
    assert result.units == "DN 0-255"
    assert result.band_names == ("B1", "B2", "B3", "B4", "B5", "B7")
    assert "Landsat-7 ETM+" in result.product
    assert read(result.path).shape[0] == 6


def test_missing_band_names_the_file(landsat_products, tmp_path):
    import shutil

    copy = tmp_path / landsat_products["l2"].name
    shutil.copytree(landsat_products["l2"], copy)
    missing = next(copy.glob("*_SR_B5.TIF"))
    missing.unlink()
    with pytest.raises(ProductError, match="SR_B5") as error:
        harmonise(copy, tmp_path / "work")
    assert str(missing) in str(error.value)


def test_mtl_text_groups_keep_level1_and_level2_apart():
    text = """GROUP = LANDSAT_METADATA_FILE
  GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
    REFLECTANCE_MULT_BAND_1 = 2.75E-05
  END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
  GROUP = LEVEL1_RADIOMETRIC_RESCALING
    REFLECTANCE_MULT_BAND_1 = 2.0000E-05
  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING
END_GROUP = LANDSAT_METADATA_FILE
END
"""
    values = parse_mtl(text, "x_MTL.txt")
    assert (
        values[("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", "REFLECTANCE_MULT_BAND_1")] == "2.75E-05"
    )
    assert values[("LEVEL1_RADIOMETRIC_RESCALING", "REFLECTANCE_MULT_BAND_1")] == "2.0000E-05"
