"""Sentinel-2 processing level from what a raster says about itself (backend.product_levels)."""

from __future__ import annotations

import pytest

from backend.product_levels import find_product_level


def _level(**facts):
    found = find_product_level(**facts)
    return found.level if found else None


@pytest.mark.parametrize(
    "opened_as, level",
    [
        ('SENTINEL2_L1C:"/data/S2A_MSIL1C_x.SAFE/MTD_MSIL1C.xml":10m:EPSG_32633', "L1C"),
        ("SENTINEL2_L2A:/data/MTD_MSIL2A.xml:20m:EPSG_32633", "L2A"),
        ("/data/scene.tif", None),
    ],
)
def test_subdataset_name_says_the_level(opened_as, level):
    assert _level(opened_as=[opened_as]) == level


def test_subdataset_name_comes_before_names_and_bands():
    found = find_product_level(
        opened_as=["SENTINEL2_L2A:/x/MTD_MSIL2A.xml:10m:EPSG_32633"],
        band_names=["B01", "B10"],
        name_hints=["S2A_MSIL1C_scene.tif"],
    )
    assert found.level == "L2A"
    assert "SENTINEL2_L2A" in found.how


def test_product_metadata_line_says_the_level():
    found = find_product_level(product="Sentinel-2 L1C product S2B_MSIL1C_2020.SAFE")
    assert found.level == "L1C" and found.how == "its product metadata"


@pytest.mark.parametrize(
    "metadata, level",
    [
        ({"PROCESSING_LEVEL": "Level-1C"}, "L1C"),
        ({"PROCESSING_LEVEL": "Level-2Ap"}, "L2A"),
        ({"PRODUCT_TYPE": "S2MSI2A"}, "L2A"),
        ({"product_type": "S2MSI1C"}, "L1C"),
        ({"PROCESSING_LEVEL": "Level-2"}, None),  # a Landsat level says nothing of Sentinel-2's
        ({"AREA_OR_POINT": "Area"}, None),
    ],
)
def test_gdal_metadata_says_the_level(metadata, level):
    assert _level(metadata=metadata) == level


def test_metadata_comes_before_band_names():
    found = find_product_level(metadata={"PRODUCT_TYPE": "S2MSI2A"}, band_names=["B09", "B10"])
    assert found.level == "L2A"


@pytest.mark.parametrize(
    "names, waves, level",
    [
        (["B01", "B09", "B10", "B11"], [], "L1C"),
        (["Band 10: B10"], [], "L1C"),
        (["B010"], [1373.5], "L1C"),
        (["B01", "B09", "B11"], [], None),  # L2A has no B10, but neither has a 12-band L1C crop
        (["B10"], [10895.0], None),  # Landsat-8 TIRS band 10 (thermal), not the cirrus band
    ],
)
def test_band_b10_says_l1c(names, waves, level):
    assert _level(band_names=names, wavelengths_nm=waves) == level


@pytest.mark.parametrize(
    "hints, level",
    [
        (["S2A_MSIL1C_20200101T000000_N0208_R001_T18SUJ.tif"], "L1C"),
        (["T33UUU_20170216_MSIL2A_stack.tif"], "L2A"),
        (["/data/l1c/scene.tif"], None),  # a folder's name is not the raster's
        (["scene_L2A.tif", "S2 l2a layer"], "L2A"),
        (["scene_L1C.tif", "scene L2A"], None),  # two levels named: none
        (["SENTINEL2_L3A_T31TCJ.tif"], "L3A"),
        (["l1cx.tif", "xl2a.tif"], None),  # not whole words
    ],
)
def test_name_words_say_the_level(hints, level):
    assert _level(name_hints=hints) == level


def test_band_b10_comes_before_name_words():
    found = find_product_level(band_names=["B10"], name_hints=["scene_L2A.tif"])
    assert found.level == "L1C" and "B10" in found.how


def test_nothing_said_is_unknown():
    assert find_product_level() is None
