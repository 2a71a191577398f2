"""Inputs: parsing SENSOR=PATH[:bands], refusing mismatches, warping other grids onto the reference."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject

from backend.inference.engine import run_inference
from backend.inference.errors import InputMismatchError, NoOverlapError
from backend.inference.inputs import RasterInput, missing_input_message, parse_input

from .conftest import read_raster, s2_band_and_its_vv


def test_parse_input_with_and_without_bands():
    assert parse_input("s2=scene.tif") == RasterInput("s2", "scene.tif")
    assert parse_input("s2=/data/scene.tif:4,3,2") == RasterInput(
        "s2", "/data/scene.tif", [4, 3, 2]
    )
    # A Windows drive letter is part of the path, not a band list.
    assert parse_input(r"rgb=C:\data\rgb.tif") == RasterInput("rgb", r"C:\data\rgb.tif")
    assert parse_input(r"rgb=C:\data\rgb.tif:1,2,3").bands == [1, 2, 3]
    with pytest.raises(InputMismatchError, match="SENSOR=PATH"):
        parse_input("scene.tif")


def test_wrong_band_count_is_refused_naming_the_input(model_factory, sample_data, tmp_path):
    model = model_factory("identity", bands=3, tile=32)
    source = sample_data / "landcover/lsat7_2000_10.tif"
    with pytest.raises(InputMismatchError, match=r"input 's2' \(lsat7_2000_10.tif\) has 1 band.*3"):
        run_inference(model, [RasterInput("s2", source)], tmp_path / "out.tif")
    rgb = sample_data / "rgb/rmnp-rgb.tif"
    with pytest.raises(InputMismatchError, match="band\\(s\\) \\[5\\] do not exist"):
        run_inference(model, [RasterInput("s2", rgb, [1, 2, 5])], tmp_path / "out.tif")
    with pytest.raises(InputMismatchError, match="2 band\\(s\\) chosen"):
        run_inference(model, [RasterInput("s2", rgb, [1, 2])], tmp_path / "out.tif")
    assert not (tmp_path / "out.tif").exists()


def test_band_selection_feeds_the_chosen_bands_in_order(model_factory, sample_data, tmp_path):
    model = model_factory("identity", bands=3, tile=64)
    rgb = sample_data / "rgb/rmnp-rgb.tif"
    out = tmp_path / "out.tif"
    run_inference(model, [RasterInput("s2", rgb, [3, 1, 2])], out)
    source, got = read_raster(rgb), read_raster(out)
    valid = np.all(source != 255, axis=0)
    np.testing.assert_allclose(got[0][valid], source[2][valid], atol=1e-3)
    np.testing.assert_allclose(got[1][valid], source[0][valid], atol=1e-3)


def test_unknown_or_missing_sensor_is_refused(model_factory, sample_data, tmp_path):
    model = model_factory("two_sensors", bands=1, tile=32)
    source = sample_data / "landcover/lsat7_2000_10.tif"
    with pytest.raises(InputMismatchError, match="has no 'sar' input; it takes s2, dsm"):
        run_inference(model, [RasterInput("sar", source)], tmp_path / "out.tif")
    with pytest.raises(InputMismatchError, match="also needs dsm"):
        run_inference(model, [RasterInput("s2", source)], tmp_path / "out.tif")


def test_a_missing_input_gets_the_advice_of_the_models_task():
    """The engine's refusal is generic; the task (backend.tasks) adds its own advice: a
    cloud-removal model without SAR is told about S2-only models, another task's is not."""
    from types import SimpleNamespace

    def model(task):
        return SimpleNamespace(model_name="m", sensors=["s2", "sar"], task=task)

    assert missing_input_message(model("cloud-removal"), ["sar"]) == (
        "the model 'm' also needs sar input(s): give one raster per sensor (s2, sar). It was not "
        "trained with Sentinel-2 samples without SAR, so it cannot run without SAR: give a "
        "Sentinel-1 VV/VH raster, or use a cloud-removal model trained with S2-only samples (its "
        "metadata marks the SAR input optional)"
    )
    for task, missing in [("segmentation", ["sar"]), ("cloud-removal", ["s2"]), ("new", ["sar"])]:
        assert missing_input_message(model(task), missing) == (
            f"the model 'm' also needs {missing[0]} input(s): give one raster per sensor (s2, sar)"
        )


def reproject_to_geographic(source, destination, resampling):
    """Write ``source`` reprojected to EPSG:4326 (a different CRS, rotation-free but sheared grid)."""
    with rasterio.open(source) as src:
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:4326", src.width, src.height, *src.bounds
        )
        profile = src.profile | {
            "crs": "EPSG:4326",
            "transform": transform,
            "width": width,
            "height": height,
        }
        with rasterio.open(destination, "w", **profile) as dst:
            reproject(
                rasterio.band(src, 1),
                rasterio.band(dst, 1),
                dst_resolution=None,
                resampling=resampling,
                src_nodata=src.nodata,
                dst_nodata=src.nodata,
            )


def test_second_input_in_another_crs_lands_on_the_reference_grid(
    model_factory, sample_data, tmp_path
):
    # Reference: Landsat band (NC State Plane). Second input: the land-cover strata of the same grid,
    # reprojected to EPSG:4326. The model adds the two, so output - Landsat = warped strata.
    landsat = sample_data / "landcover/lsat7_2000_10.tif"
    strata = sample_data / "landcover/strata.tif"
    geographic = tmp_path / "strata_4326.tif"
    reproject_to_geographic(strata, geographic, Resampling.nearest)
    model = model_factory("two_sensors", bands=1, tile=64, mean=0.0, std=1.0)
    out = tmp_path / "out.tif"
    run_inference(
        model,
        [RasterInput("s2", landsat), RasterInput("dsm", geographic, categorical=True)],
        out,
        run_anyway=True,  # a model of arbitrary statistics: this test is about the grid
    )
    with rasterio.open(out) as dst, rasterio.open(landsat) as ref:
        assert dst.crs == ref.crs and dst.transform.almost_equals(ref.transform)
        warped = dst.read(1, masked=True) - ref.read(1, masked=True)
    original = read_raster(strata, 1)
    both = ~np.ma.getmaskarray(warped) & (original != -99999)
    assert both.mean() > 0.8
    # Nearest there and back: classes agree at almost every pixel of the reference grid.
    assert np.mean(np.rint(warped.data[both]) == original[both]) > 0.95
    # At known ground positions (pixel centres picked across the scene) the class read through the
    # warp is the class of the 4326 raster at the same longitude/latitude.
    rows, cols = np.nonzero(both)
    picks = np.linspace(0, rows.size - 1, 50).astype(int)
    with rasterio.open(landsat) as ref, rasterio.open(geographic) as geo:
        xs, ys = rasterio.transform.xy(ref.transform, rows[picks], cols[picks])
        lons, lats = rasterio.warp.transform(ref.crs, geo.crs, xs, ys)
        at_ground = np.array([v[0] for v in geo.sample(zip(lons, lats))])
    agree = np.rint(warped.data[rows[picks], cols[picks]]) == at_ground
    assert agree.mean() >= 0.9
    # The same check against a grid shifted by 3 pixels fails: the test sees misalignment.
    shifted = np.rint(warped.data[rows[picks], np.clip(cols[picks] + 3, 0, 488)]) == at_ground
    assert shifted.mean() < agree.mean()


@pytest.mark.parametrize("relative", ["dem/dem.tif", "pan_ms/pan1.tif"])
def test_warped_input_outside_its_footprint_is_nodata(
    model_factory, sample_data, tmp_path, relative
):
    # A second input covering only part of the reference: a crop of the same raster. The lidar DEM
    # has a nodata value; the WorldView pan band has none (its coverage comes from an alpha band).
    dem = sample_data / relative
    crop = tmp_path / "dem_crop.tif"
    window = rasterio.windows.Window(100, 120, 150, 170)
    with rasterio.open(dem) as src:
        profile = src.profile | {
            "width": 150,
            "height": 170,
            "transform": src.window_transform(window),
        }
        with rasterio.open(crop, "w", **profile) as dst:
            dst.write(src.read(window=window))
    model = model_factory("two_sensors", bands=1, tile=64, mean=0.0, std=1.0)
    out = tmp_path / "out.tif"
    # A model of arbitrary statistics: this test is about the grid, not the domain.
    run_inference(model, [RasterInput("s2", dem), RasterInput("dsm", crop)], out, run_anyway=True)
    got = read_raster(out, 1)
    with rasterio.open(out) as dst:
        covered = dst.read_masks(1) > 0
    expected = np.zeros(got.shape, bool)
    expected[120:290, 100:250] = True
    np.testing.assert_array_equal(covered, expected)
    # On the crop's own pixels the warp is exact: output = dem + dem.
    np.testing.assert_allclose(
        got[expected], 2 * read_raster(dem, 1)[expected].astype(np.float64), rtol=1e-6
    )


def test_input_that_does_not_overlap_is_refused(model_factory, sample_data, tmp_path):
    source = sample_data / "landcover/lsat7_2000_10.tif"
    far = tmp_path / "far_away.tif"
    with rasterio.open(source) as src:
        profile = src.profile | {
            "transform": src.transform
            * Affine.translation(0, 0)
            * Affine.translation(-100000 / 28.5, 0)
        }
        with rasterio.open(far, "w", **profile) as dst:
            dst.write(src.read())
    model = model_factory("two_sensors", bands=1, tile=32)
    with pytest.raises(NoOverlapError, match=r"input 'dsm' \(far_away.tif\): it does not overlap"):
        run_inference(
            model, [RasterInput("s2", source), RasterInput("dsm", far)], tmp_path / "o.tif"
        )
    assert not (tmp_path / "o.tif").exists()


def test_unreadable_input_is_refused(model_factory, tmp_path):
    bogus = tmp_path / "notes.tif"
    bogus.write_text("not a raster")
    with pytest.raises(InputMismatchError, match="cannot open"):
        run_inference(model_factory("identity"), [RasterInput("s2", bogus)], tmp_path / "o.tif")


def test_second_input_on_the_same_grid_is_read_directly(model_factory, sample_data, tmp_path):
    # BigEarthNet S2 B04 and its S1 partner's VV share one 120 x 120 grid: no warping is needed and
    # the model's sum equals the sum of the two files pixel by pixel.
    s2_band, vv = s2_band_and_its_vv(sample_data)
    # Alone, under a name of its own: beside its siblings the file is read as the 12-band set.
    s2_band = Path(shutil.copy(s2_band, tmp_path / "b04.tif"))
    model = model_factory("two_sensors", bands=1, tile=64, mean=0.0, std=1.0)
    out = tmp_path / "sum.tif"
    run_inference(
        model,
        [RasterInput("s2", s2_band), RasterInput("dsm", vv)],
        out,
        run_anyway=True,
        reflectance_dtype="float32",  # the sum has fractions (VV in dB)
    )
    expected = read_raster(s2_band, 1).astype(np.float64) + read_raster(vv, 1)
    with rasterio.open(out) as dst:
        assert np.allclose(dst.read(1), expected, rtol=1e-5, atol=1e-3)


def test_bands_of_different_types_in_one_raster(model_factory, sample_data, tmp_path):
    # A VRT stacking the Float32 band 5 and the Int16 band 7 of the Landsat sample.
    from osgeo import gdal

    bands = [
        sample_data / "landcover/lsat7_2000_50.tif",
        sample_data / "landcover/lsat7_2000_70.tif",
    ]
    stack = tmp_path / "stack.vrt"
    gdal.BuildVRT(str(stack), [str(b) for b in bands], separate=True).FlushCache()
    with rasterio.open(stack) as src:
        assert len(set(src.dtypes)) == 2
    model = model_factory("identity", bands=2, tile=64, mean=0.0, std=1.0)
    out = tmp_path / "out.tif"
    run_inference(model, [RasterInput("s2", stack)], out, run_anyway=True)
    with rasterio.open(out) as dst:
        written = dst.read(masked=True)
    valid = ~np.ma.getmaskarray(written).any(axis=0)
    assert valid.mean() > 0.5
    for k, band in enumerate(bands):
        expected = read_raster(band, 1).astype(np.float32)
        np.testing.assert_allclose(written[k].data[valid], expected[valid], atol=1e-3)
