"""Plain rasters: returned as they are, with the band names and wavelengths GDAL metadata gives."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from backend.products import ProductError, harmonise
from backend.products.bandinfo import band_name_from_file, wavelength_nm


def _raster(path, count=2, **kwargs):
    return rasterio.open(
        path, "w", driver=kwargs.pop("driver", "GTiff"), width=8, height=8, count=count,
        dtype="uint16", crs="EPSG:32633", transform=from_origin(0, 80, 10, 10), **kwargs,
    )  # fmt: skip


def test_plain_raster_unchanged_with_descriptions_and_wavelengths(tmp_path):
    path = tmp_path / "scene.tif"
    with _raster(path) as dataset:
        dataset.write(np.ones((2, 8, 8), dtype=np.uint16))
        dataset.set_band_description(1, "B04")
        dataset.update_tags(1, CENTRAL_WAVELENGTH_UM="0.665")
        dataset.update_tags(2, BANDNAME="B8", WAVELENGTH="842", WAVELENGTH_UNIT="nm")
    result = harmonise(path, tmp_path / "work")
    assert result.path == str(path)
    assert result.band_names == ("B04", "B8")
    assert result.wavelengths_nm == (pytest.approx(665.0), 842.0)
    assert result.sensor is None and result.units is None
    assert result.product == "GTiff scene.tif"
    assert not (tmp_path / "work").exists()


def test_envi_wavelengths(tmp_path):
    path = tmp_path / "cube.img"
    with _raster(path, driver="ENVI") as dataset:
        dataset.write(np.ones((2, 8, 8), dtype=np.uint16))
    path.with_suffix(".hdr").write_text(
        path.with_suffix(".hdr").read_text()
        + "band names = {red, nir}\nwavelength units = Micrometers\nwavelength = {0.665, 0.842}\n"
    )
    result = harmonise(path, tmp_path / "work")
    assert result.band_names == ("red", "nir")
    assert result.wavelengths_nm == (pytest.approx(665.0), pytest.approx(842.0))


def test_sentinel2_driver_descriptions_give_name_and_wavelength(tmp_path):
    path = tmp_path / "exported.tif"
    with _raster(path, count=1) as dataset:
        dataset.write(np.ones((1, 8, 8), dtype=np.uint16))
        dataset.set_band_description(1, "B4, central wavelength 665 nm")
    result = harmonise(path, tmp_path)
    assert result.band_names == ("B4",)
    assert result.wavelengths_nm == (665.0,)


def test_unreadable_file_is_a_product_error(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"not a tiff")
    with pytest.raises(ProductError, match=r"broken\.tif"):
        harmonise(path, tmp_path)
    with pytest.raises(ProductError, match="does not exist"):
        harmonise(tmp_path / "absent.tif", tmp_path)


@pytest.mark.parametrize(
    ("name", "band"),
    [
        ("T33UUU_20170216T102101_B8A.jp2", "B8A"),
        ("T33UUP_20170613T101031_B02_10m.jp2", "B02"),
        ("LC08_L2SP_022039_20160614_20200906_02_T1_SR_B4.TIF", "SR_B4"),
        ("S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48_VH.tif", "VH"),
        ("l8_B1.tif", "B1"),
        ("red.tif", "red"),
    ],
)
def test_band_name_from_file(name, band):
    assert band_name_from_file(name) == band


def test_wavelength_units():
    assert wavelength_nm({"WAVELENGTH": "0.842"}, {}) == pytest.approx(842.0)
    assert wavelength_nm({"wavelength": "842", "wavelength_units": "Nanometers"}, {}) == 842.0
    assert wavelength_nm({}, {}) is None
