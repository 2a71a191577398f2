"""Sentinel-2 products: SAFE folder, MTD XML, zip and GDAL subdataset give the same reflectance."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
import rasterio

from backend.products import ProductError, harmonise
from backend.products.sentinel2 import subdataset_path

from .conftest import read

L1C_BANDS = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
)


def _raw_dn(products, band):
    """The crop's DN as the baseline-02.04 product stores it (0 = nodata)."""
    path = next((products["l1c_0204"] / "GRANULE").glob(f"*/IMG_DATA/*_{band}.jp2"))
    with rasterio.open(path) as dataset:
        return dataset.read(1).astype(np.float64), dataset.res


def test_l1c_baselines_give_the_same_reflectance(sentinel2_products, workdir):
    old = harmonise(sentinel2_products["l1c_0204"], workdir)
    new = harmonise(sentinel2_products["l1c_0400"] / "MTD_MSIL1C.xml", workdir)
    assert old.band_names == new.band_names == L1C_BANDS
    assert old.sensor == new.sensor == "s2"
    assert old.units == new.units == "reflectance x 10000"
    assert "processing baseline 04.00" in new.product
    assert any("RADIO_ADD_OFFSET -1000 added to 13 bands" in note for note in new.notes)
    assert not any("added" in note for note in old.notes)
    old_values, new_values = read(old.path), read(new.path)
    # The DN of 04.00 are shifted by +1000 and its metadata says -1000: the same reflectance.
    np.testing.assert_array_equal(np.isnan(old_values), np.isnan(new_values))
    np.testing.assert_allclose(old_values, new_values, rtol=0, atol=1e-3)
    # 10 m bands are the DN themselves (quantification 10000), nodata where DN is 0.
    dn, resolution = _raw_dn(sentinel2_products, "B04")
    assert resolution == (10.0, 10.0)
    expected = np.where(dn > 0, dn, np.nan)
    np.testing.assert_array_equal(new_values[L1C_BANDS.index("B04")], expected)
    assert np.isnan(new_values[:, 0, 0]).all() and not np.isnan(new_values[:, -1, -1]).any()


def test_l1c_grid_is_the_10m_grid_with_names_and_wavelengths(sentinel2_products, workdir):
    result = harmonise(sentinel2_products["l1c_0400"], workdir)
    with (
        rasterio.open(result.path) as dataset,
        rasterio.open(
            next((sentinel2_products["l1c_0400"] / "GRANULE").glob("*/IMG_DATA/*_B02.jp2"))
        ) as b02,
    ):
        assert dataset.transform == b02.transform
        assert (dataset.width, dataset.height) == (b02.width, b02.height)
        assert dataset.crs == b02.crs
        assert dataset.descriptions == L1C_BANDS
        assert dataset.tags(4)["WAVELENGTH"] == "664.6"
    assert result.wavelengths_nm[L1C_BANDS.index("B10")] == pytest.approx(1373.5)


def test_20m_band_is_bilinear_on_the_10m_grid_and_nodata_stays_nodata(sentinel2_products, workdir):
    result = harmonise(sentinel2_products["l1c_0400"], workdir)
    b05 = read(result.path)[L1C_BANDS.index("B05")]
    dn, _ = _raw_dn(sentinel2_products, "B05")
    # Away from edges, bilinear 2x upsampling: a 10 m pixel is 3/4 its 20 m pixel, 1/4 the next.
    row, col = 80, 81  # 10 m pixel centre at 20 m position (40.25, 40.75)
    expected_row = 0.75 * dn[40] + 0.25 * dn[39]
    expected = 0.75 * expected_row[40] + 0.25 * expected_row[41]
    assert b05[row, col] == pytest.approx(expected, abs=0.01)
    # No nodata DN leaks into the edge of the valid area: every valid value is a real reflectance.
    valid = b05[~np.isnan(b05)]
    assert valid.min() >= dn[dn > 0].min() - 1e-3
    assert np.isnan(b05[0, 0])


def test_separate_band_files_and_stack_give_the_safe_values(sentinel2_products, workdir):
    product = read(harmonise(sentinel2_products["l1c_0400"], workdir).path)
    files = harmonise(sentinel2_products["l1c_bands"], workdir)
    assert files.band_names == L1C_BANDS
    assert any("DN 0 kept as nodata" in note for note in files.notes)
    np.testing.assert_array_equal(read(files.path), product)
    stack = harmonise(sentinel2_products["l1c_stack"], workdir)
    assert stack.path == str(sentinel2_products["l1c_stack"])
    assert stack.band_names == L1C_BANDS and stack.sensor is None and stack.units is None
    stacked = read(stack.path)
    both = ~np.isnan(stacked) & ~np.isnan(product)
    assert both.mean() > 0.95
    # The stack was resampled by rasterio's warper and rounded to whole DN: within 1 DN inside,
    # where both resamplers see the same four pixels.
    inner = both.copy()
    inner[:, :40, :] = False
    assert np.abs(stacked - product)[inner].max() <= 1.0


def test_one_band_file_beside_its_set_is_read_as_the_set(sentinel2_products, workdir, tmp_path):
    folder = sentinel2_products["l1c_bands"]
    b04 = next(folder.glob("*_B04.tif"))
    one = harmonise(str(b04), workdir)
    assert one.band_names == L1C_BANDS
    assert one.notes[0].startswith(f"{b04.name} is one of {len(L1C_BANDS)} band files beside it")
    np.testing.assert_array_equal(read(one.path), read(harmonise(folder, workdir).path))
    # Alone (or renamed), a band file is one band.
    alone = tmp_path / "alone"
    alone.mkdir()
    single = harmonise(str(shutil.copy(b04, alone / b04.name)), workdir)
    assert len(single.band_names) == 1
    renamed = harmonise(str(shutil.copy(b04, tmp_path / "red.tif")), workdir)
    assert len(renamed.band_names) == 1


def test_l2a_takes_each_band_at_its_native_resolution(sentinel2_products, workdir):
    result = harmonise(sentinel2_products["l2a_0509"], workdir)
    assert result.band_names == tuple(b for b in L1C_BANDS if b != "B10")
    assert any("BOA_ADD_OFFSET -1000 added to 12 bands" in note for note in result.notes)
    assert any(note.startswith("B01, B09 resampled from 60 m") for note in result.notes)
    patch = harmonise(sentinel2_products["l2a_bands"], workdir)
    assert patch.band_names == result.band_names
    values = read(result.path)
    # The BigEarthNet patch (separate files, no offset) is the same scene: identical values,
    # also for B02 whose 20 m and 60 m copies in the product must not be used.
    np.testing.assert_array_equal(values, read(patch.path))
    assert values.shape == (12, 120, 120)


def test_zip_and_gdal_subdataset_open_the_same_product(sentinel2_products, workdir, tmp_path):
    safe = sentinel2_products["l2a_0509"]
    archive = tmp_path / f"{safe.name[:-5]}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as stream:
        for path in safe.rglob("*"):
            stream.write(path, f"{safe.name}/{path.relative_to(safe)}")
    expected = read(harmonise(safe, workdir).path)
    zipped = harmonise(archive, workdir)
    assert zipped.sensor == "s2"
    assert not list(workdir.rglob("*.jp2"))  # read in place through /vsizip/, nothing unpacked
    np.testing.assert_array_equal(read(zipped.path), expected)
    subdataset = f"SENTINEL2_L2A:{safe}/MTD_MSIL2A.xml:20m:EPSG_32633"
    np.testing.assert_array_equal(read(harmonise(subdataset, workdir).path), expected)
    in_zip = f"SENTINEL2_L2A:/vsizip/{archive}/{safe.name}/MTD_MSIL2A.xml:10m:EPSG_32633"
    np.testing.assert_array_equal(read(harmonise(in_zip, workdir).path), expected)


def test_10m_bands_match_gdal_sentinel2_driver(sentinel2_products, workdir):
    """GDAL's own SENTINEL2 driver reads the same product (DN, no offset applied)."""
    safe = sentinel2_products["l2a_0509"]
    result = harmonise(safe, workdir)
    values = read(result.path)
    with rasterio.open(f"SENTINEL2_L2A:{safe}/MTD_MSIL2A.xml:10m:EPSG_32633") as dataset:
        for index in range(1, dataset.count + 1):
            name = dataset.tags(index)["BANDNAME"]  # B4, B3, B2, B8
            dn = dataset.read(index).astype(np.float64)
            expected = np.where(dn > 0, dn - 1000, np.nan)
            ours = values[result.band_names.index(f"B0{name[1:]}")]
            np.testing.assert_array_equal(ours, expected)


def test_missing_band_file_names_the_file(sentinel2_products, tmp_path):
    copy = tmp_path / sentinel2_products["l1c_0400"].name
    shutil.copytree(sentinel2_products["l1c_0400"], copy)
    missing = next(copy.glob("GRANULE/*/IMG_DATA/*_B8A.jp2"))
    missing.unlink()
    with pytest.raises(ProductError, match=r"B8A\.jp2 is missing") as error:
        harmonise(copy, tmp_path / "work")
    assert str(missing) in str(error.value)
    assert "download the product again" in str(error.value)
    assert not (tmp_path / "work").exists() or not list((tmp_path / "work").glob("*.vrt"))


def test_granule_metadata_is_refused_with_the_fix(sentinel2_products, tmp_path):
    tile_metadata = next(sentinel2_products["l1c_0204"].glob("GRANULE/*/MTD_TL.xml"))
    with pytest.raises(ProductError):
        harmonise(tile_metadata, tmp_path)


def test_quantification_value_scales(sentinel2_products, tmp_path, workdir):
    copy = tmp_path / sentinel2_products["l1c_0204"].name
    shutil.copytree(sentinel2_products["l1c_0204"], copy)
    mtd = copy / "MTD_MSIL1C.xml"
    mtd.write_text(
        mtd.read_text().replace(">10000</QUANTIFICATION_VALUE>", ">20000</QUANTIFICATION_VALUE>")
    )
    halved = read(harmonise(copy, workdir).path)
    full = read(harmonise(sentinel2_products["l1c_0204"], workdir).path)
    np.testing.assert_allclose(halved, full / 2, atol=1e-3)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("SENTINEL2_L2A:/d/S2.SAFE/MTD_MSIL2A.xml:10m:EPSG_32633", "/d/S2.SAFE/MTD_MSIL2A.xml"),
        ("SENTINEL2_L1C:/d/MTD_MSIL1C.xml:TCI:EPSG_32633", "/d/MTD_MSIL1C.xml"),
        ('SENTINEL2_L1C:"C:\\d\\MTD_MSIL1C.xml":60m:EPSG_32633', "C:\\d\\MTD_MSIL1C.xml"),
        ("/d/scene.tif", None),
    ],
)
def test_subdataset_path(text, path):
    assert subdataset_path(text) == path


def test_band_files_taken_from_a_safe_get_its_offset(sentinel2_products, workdir):
    """JP2 files picked from IMG_DATA one by one are calibrated with their SAFE's metadata."""
    safe = sentinel2_products["l1c_0400"]
    product = read(harmonise(safe, workdir).path)
    b04 = next(safe.glob("GRANULE/*/IMG_DATA/*_B04.jp2"))
    single = harmonise(b04, workdir)
    assert len(single.band_names) == 1 and single.units == "reflectance x 10000"
    assert single.product == b04.name
    assert any("offset -1000" in note for note in single.notes)
    np.testing.assert_array_equal(read(single.path)[0], product[L1C_BANDS.index("B04")])
    files = sorted(safe.glob("GRANULE/*/IMG_DATA/*.jp2"))
    stacked = harmonise(files, workdir)
    assert stacked.band_names == tuple(sorted(L1C_BANDS))  # in the order given
    order = [L1C_BANDS.index(name) for name in stacked.band_names]
    np.testing.assert_array_equal(read(stacked.path), product[order])


def test_sentinel1_safe_is_refused_with_the_fix(tmp_path):
    safe = tmp_path / "S1A_IW_GRDH_1SDV_20170613T165043_20170613T165108_017000_01C5A0_4A0F.SAFE"
    (safe / "measurement").mkdir(parents=True)
    (safe / "manifest.safe").write_text("<xfdu:XFDU/>")
    with pytest.raises(ProductError, match="Calibrat"):
        harmonise(safe, tmp_path / "work")


def test_level_2ap_metadata_layout_is_read(sentinel2_products, tmp_path, workdir):
    """2017-2018 L2A products (sen2cor 2.4, "Level-2Ap") name things differently: L2A_ prefixed
    groups, IMAGE_FILE_2A, one Granule_List per resolution, L2A_BOA_QUANTIFICATION_VALUE and no
    offset."""
    copy = tmp_path / sentinel2_products["l2a_0509"].name
    shutil.copytree(sentinel2_products["l2a_0509"], copy)
    mtd = copy / "MTD_MSIL2A.xml"
    text = mtd.read_text()
    start = text.index("<BOA_ADD_OFFSET_VALUES_LIST>")
    end = text.index("</BOA_ADD_OFFSET_VALUES_LIST>") + len("</BOA_ADD_OFFSET_VALUES_LIST>")
    text = text[:start] + text[end:]
    granule_start = text.index("<Granule ")
    granule_end = text.index("</Granule>") + len("</Granule>")
    granule = text[granule_start:granule_end]
    header = granule[: granule.index(">") + 1]
    per_resolution = []
    for resolution in ("R60m", "R20m", "R10m"):
        files = [line for line in granule.splitlines() if f"/{resolution}/" in line]
        per_resolution.append(header + "".join(files) + "</Granule>")
    text = text.replace(
        f"<Granule_List>{text[text.index('<Granule_List>') + 14 : text.index('</Granule_List>')]}</Granule_List>",
        "".join(f"<Granule_List>{g}</Granule_List>" for g in per_resolution),
    )
    text = (
        text.replace("IMAGE_FILE>", "IMAGE_FILE_2A>")
        .replace("<Product_Info>", "<L2A_Product_Info>")
        .replace("</Product_Info>", "</L2A_Product_Info>")
        .replace("Product_Organisation>", "L2A_Product_Organisation>")
        .replace("<PRODUCT_URI>", "<PRODUCT_URI_2A>")
        .replace("</PRODUCT_URI>", "</PRODUCT_URI_2A>")
        .replace("<PROCESSING_BASELINE>05.09", "<PROCESSING_BASELINE>02.05")
        .replace("BOA_QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE")
    )
    mtd.write_text(text)
    assert text.count("<Granule ") == 3 and "BOA_ADD_OFFSET" not in text
    result = harmonise(copy, workdir)
    assert "processing baseline 02.05" in result.product
    assert not any("added" in note for note in result.notes)
    # The copied DN carry the +1000 of baseline 05.09, which this metadata does not state.
    patch = read(harmonise(sentinel2_products["l2a_bands"], workdir).path)
    np.testing.assert_array_equal(read(result.path), patch + 1000)
