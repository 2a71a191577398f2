"""Int8 export: the quantised model runs, and its parity against the float model is measured on
real held-back tiles and recorded in its metadata."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backend.export.quantize import quantize_model
from backend.export.schema import ModelMetadataError, read_model_metadata, to_metadata_props
from backend.inference.engine import run_inference
from backend.inference.inputs import RasterInput
from backend.train.evaluate import evaluate_model

# A 6-band GeoTIFF crop of the Landsat sample (fixture) and the test checkpoints of the export tests.
from .test_onnx_export import SPECS, landsat_raster, make_task_checkpoint  # noqa: F401

ROOT = Path(__file__).resolve().parents[3]
LANDSAT_BANDS = (10, 20, 30, 40, 50, 70)  # the six ETM+ bands the bundled models take


@pytest.fixture(scope="module")
def landsat_stack(sample_data, tmp_path_factory) -> Path:
    """The six single-band Landsat-7 sample files as one 6-band VRT (no pixels copied)."""
    from osgeo import gdal

    path = tmp_path_factory.mktemp("landsat") / "landsat6.vrt"
    files = [str(sample_data / f"landcover/lsat7_2000_{b}.tif") for b in LANDSAT_BANDS]
    gdal.BuildVRT(str(path), files, separate=True).FlushCache()
    return path


@pytest.fixture(scope="module")
def quantized(landsat_stack, owned_bundled_models, tmp_path_factory):
    """The recipe's classification model (the tests' own, tests/bundled_models.py) in int8."""
    out = tmp_path_factory.mktemp("int8") / "classification-int8.onnx"
    report = quantize_model(
        owned_bundled_models / "classification.onnx",
        out,
        parity_data="finetune_classification_landcover",
        score_model=evaluate_model,
        test_fraction=0.2,  # the bundled models are trained with a test split: score it
        parity_rasters=[f"landsat={landsat_stack}"],
    )
    return report


def test_held_back_scores_of_both_models_are_recorded(quantized, owned_bundled_models):
    record = quantized.metadata.quantization
    assert record["weights"] == "int8"
    held = record["parity"]["held_back"]
    assert held["data"] == "finetune_classification_landcover"
    # The float model's score is the one the recipe's manifest reports for the same split.
    manifest = json.loads((owned_bundled_models / "MANIFEST.json").read_text())
    entry = next(f for f in manifest["files"] if f["file"] == "classification.onnx")
    assert held["split"] == entry["evaluation"]["split"]
    assert held["split"]["part"] == "test"
    assert held["n_samples"] == entry["evaluation"]["n_samples"]
    expected = entry["evaluation"]["metrics"]["overall_accuracy"]
    assert held["float32"]["overall_accuracy"] == pytest.approx(expected)
    assert 0.0 <= held["int8"]["overall_accuracy"] <= 1.0


def test_output_parity_on_raster_tiles(quantized):
    outputs = quantized.metadata.quantization["parity"]["outputs"]
    assert outputs["rasters"] == ["landsat6.vrt"] and outputs["n_tiles"] > 4
    probabilities = outputs["per_output"]["probabilities"]
    assert 0.0 <= probabilities["class_agreement"] <= 1.0
    assert 0.0 < probabilities["max_abs_diff"] < 1.0  # int8 is not bit-exact, and not broken


def weight_bytes(path: Path) -> int:
    """Bytes of a model's initializers (its weights, without the graph and the metadata)."""
    import onnx

    model = onnx.load(str(path))
    return sum(len(t.raw_data) or 4 * len(t.float_data) for t in model.graph.initializer)


def test_int8_model_is_smaller_valid_and_runs_in_the_engine(
    quantized, owned_bundled_models, landsat_stack, tmp_path
):
    assert quantized.bytes < quantized.source_bytes
    # The weights shrink about 4 x; the graph and metadata do not (a large share of the tests'
    # tiny model, a small one of the bundled models).
    source = weight_bytes(owned_bundled_models / "classification.onnx")
    assert weight_bytes(quantized.path) < 0.6 * source
    metadata = read_model_metadata(quantized.path)
    assert metadata.model_version.endswith("-int8")
    assert json.loads(to_metadata_props(metadata)["quantization"])["weights"] == "int8"
    result = run_inference(
        quantized.path, [RasterInput("landsat", landsat_stack)], tmp_path / "classes.tif"
    )
    assert result.tiles_run > 0


def test_a_float_model_stores_no_quantization_key(owned_bundled_models):
    metadata = read_model_metadata(owned_bundled_models / "classification.onnx")
    assert metadata.quantization == {}
    assert "quantization" not in to_metadata_props(metadata)
    metadata.quantization = {"weights": "int8"}  # no parity: refused
    with pytest.raises(ModelMetadataError, match="'quantization'"):
        to_metadata_props(metadata)


def test_quantizing_needs_parity_data_and_a_float_model(quantized, owned_bundled_models, tmp_path):
    classification = owned_bundled_models / "classification.onnx"
    with pytest.raises(ValueError, match="--parity-data"):
        quantize_model(classification, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="already quantised"):
        quantize_model(quantized.path, tmp_path / "y.onnx", parity_data="x")
    with pytest.raises(ValueError, match="score_model"):  # scoring is handed in, not imported
        quantize_model(classification, tmp_path / "z.onnx", parity_data="x")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing left behind


def test_cli_quantizes_an_onnx_model(landsat_stack, owned_bundled_models, tmp_path):
    out = tmp_path / "int8.onnx"
    classification = owned_bundled_models / "classification.onnx"
    command = [sys.executable, "-m", "backend.cli", "export", "--onnx", str(classification)]
    parity = ["--parity-raster", f"landsat={landsat_stack}"]
    done = subprocess.run(
        [*command, "--out", str(out), "--quantize", "int8", "--json", *parity],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["quantization"]["parity"]["outputs"]["n_tiles"] > 0
    refused = subprocess.run(
        [*command, "--out", str(tmp_path / "no.onnx"), "--quantize", "int8"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert refused.returncode != 0 and "--parity-data" in refused.stderr


def test_cli_exports_a_checkpoint_straight_to_int8(landsat_raster, tmp_path, capsys):  # noqa: F811
    """--checkpoint with --quantize: the float export is checked against torch, then quantised;
    only the int8 model is left."""
    from backend.cli import main

    checkpoint = make_task_checkpoint(tmp_path / "run", SPECS["segmentation"])
    out = tmp_path / "models" / "landcover-int8.onnx"
    arguments = ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--quantize", "int8"]
    assert main([*arguments, "--parity-raster", f"landsat={landsat_raster}"]) == 0
    printed = capsys.readouterr().out
    assert "int8" in printed and "class_agreement" in printed
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]
    record = read_model_metadata(out).quantization
    assert record["operators"] == ["MatMul", "Gemm"]
    assert record["parity"]["outputs"]["n_tiles"] > 0
