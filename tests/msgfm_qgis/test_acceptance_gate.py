"""None shipped that fails: the gate moves failing models out, and then the zip, the algorithms,
``msgfm predict`` and the demo behave as a user without those models needs.

The gate runs on copies: of the tests' own bundled models (tests/bundled_models.py) with verdicts
like today's report (every measured model fails, the other embedding models are not measured), and
of the shipped ``resources/models`` with the shipped results file, by the command the maintainers
run (``msgfm accept --render --gate``).
"""

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProcessingException

import build
from backend.accept.gate import apply_gate
from backend.accept.suite import thresholds_table
from backend.files import sha256_file

from ..bundled_models import PLUGIN_MODELS, copy_models
from .algorithms.conftest import S2_BANDS, bigearthnet_folder, stack

ROOT = Path(__file__).resolve().parents[2]
# The verdicts of docs/acceptance.md when this test was written: every measured model fails; the
# embedding models of sensors without a labelled unseen scene are not measured (and leave too).
FAILED = {
    "segmentation.onnx": ("segmentation", "water_recall", 0.0),
    "classification.onnx": ("classification", "largest_class_share", 0.97),
    "cloud-removal.onnx": ("cloud-removal", "clipped_fraction", 0.44),
    "pansharpening.onnx": ("pansharpening", "sam_over_classical_deg", 0.3),
    "embedding.onnx": ("embedding", "macro_f1_over_random_encoder", -0.15),
    "embedding-landsat.onnx": ("embedding", "ari_over_kmeans", -0.02),
}
NOT_MEASURED = ("embedding-rgb.onnx", "embedding-sar_vv.onnx", "embedding-dem.onnx")
TOOL = "classify-with-examples (bands only)"
NOT_MEASURED_REASON = "not measured: no labelled held-out scene for this sensor"
# Each analysis algorithm whose bundled model was moved out, with real inputs it would take.
REFUSALS = {
    "msgfm:segmentlandcover": ("segmentation", {"INPUT": "{landsat}"}),
    "msgfm:classifyscenes": ("scene classification", {"INPUT": "{landsat}"}),
    "msgfm:removeclouds": ("cloud removal", {"S2": "{s2}", "SAR": "{s1}"}),
    "msgfm:pansharpen": ("pan-sharpening", {"PAN": "{pan}", "MS": "{ms}"}),
}


def verdict(task, passed, check, value):
    return {
        "task": task,
        "passed": passed,
        "scenes": [
            {
                "scene": "landsat7_olinda",
                "checks": [{"check": check, "value": value, "passed": passed, "note": ""}],
            }
        ],
    }


def results():
    models = {name: verdict(task, False, *rest) for name, (task, *rest) in FAILED.items()}
    models.update(
        {name: {"task": "embedding", "passed": None, "scenes": []} for name in NOT_MEASURED}
    )
    # A tool that ships with no model file (scored, never gated: there is nothing to move).
    models[TOOL] = {**verdict("classify-with-examples", False, "accuracy_over_majority", -0.07)}
    models[TOOL]["kind"] = "tool"
    return {"thresholds": thresholds_table(), "models": models}


def check_gated_folder(models: Path) -> dict:
    """The invariants of a models folder after the gate; returns its manifest."""
    manifest = json.loads((models / "MANIFEST.json").read_text(encoding="utf-8"))
    listed = {entry["file"] for entry in manifest["files"]}
    for entry in manifest["files"]:  # every file the manifest ships is there, as recorded
        assert sha256_file(models / entry["file"]) == entry["sha256"], entry["file"]
    assert {p.name for p in models.glob("*.onnx")} <= listed  # nothing ships unlisted
    for entry in manifest.get("rejected", []):
        assert not (models / entry["file"]).exists(), entry["file"]
        assert entry["file"] not in listed
        if entry["reason"].startswith("not measured"):  # no check ran: none failed
            assert entry["failed_checks"] == [], entry
        else:
            assert "failed its acceptance checks" in entry["reason"]
            assert entry["failed_checks"], entry
        for check in entry["failed_checks"]:
            assert set(check) == {"scene", "check", "value", "passes_when"}
    return manifest


@pytest.fixture(scope="module")
def gated(owned_bundled_models, tmp_path_factory):
    """(models folder after the gate, folder of the models it moved out)."""
    root = tmp_path_factory.mktemp("gated")
    models = copy_models(owned_bundled_models, root / "models")
    moved = apply_gate(results(), models, root / "rejected")
    assert sorted(moved) == sorted([*FAILED, *NOT_MEASURED])
    return models, root / "rejected"


def test_gate_moves_the_failing_models_out_and_records_why(gated, owned_bundled_models):
    models, rejected = gated
    manifest = check_gated_folder(models)
    before = json.loads((owned_bundled_models / "MANIFEST.json").read_text(encoding="utf-8"))
    sums = {entry["file"]: entry["sha256"] for entry in before["files"]}
    assert sorted(e["file"] for e in manifest["rejected"]) == sorted([*FAILED, *NOT_MEASURED])
    for entry in manifest["rejected"]:
        # The moved file is the one the manifest listed, byte for byte.
        assert sha256_file(rejected / entry["file"]) == entry["sha256"] == sums[entry["file"]]
        if entry["file"] in NOT_MEASURED:
            assert entry["task"] == "embedding"
            assert entry["reason"].startswith(NOT_MEASURED_REASON), entry["reason"]
            continue
        task, check, value = FAILED[entry["file"]]
        assert entry["task"] == task
        assert [(c["check"], c["value"]) for c in entry["failed_checks"]] == [(check, value)]
    # No model passed, so none stays; the encoder (Finetune starts from it; not scored) does.
    kept = {entry["file"] for entry in manifest["files"]}
    assert not [name for name in kept if name.endswith(".onnx")]
    assert {"msgfm_lite_encoder/model.safetensors", "msgfm_lite_encoder/meta.json"} <= kept
    assert manifest["acceptance"]["embedding-dem.onnx"]["passed"] is None
    assert TOOL not in manifest["acceptance"]  # a tool has no file for the gate to move
    # A second run changes nothing (the maintainers may run it again after a new report).
    assert apply_gate(results(), models, rejected) == []
    assert json.loads((models / "MANIFEST.json").read_text(encoding="utf-8")) == manifest


def test_the_zip_ships_only_the_models_that_passed(gated, tmp_path):
    models, _ = gated
    with zipfile.ZipFile(build.build(tmp_path, models=models)) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("msgfm_qgis/resources/models/MANIFEST.json"))
    shipped = {n.split("resources/models/")[1] for n in names if "/resources/models/" in n}
    assert shipped == {entry["file"] for entry in manifest["files"]} | {"MANIFEST.json"}
    assert not shipped & {*FAILED, *NOT_MEASURED}
    assert "msgfm_qgis/resources/icons/msgfm.svg" in names  # the rest of resources/ ships


@pytest.fixture(scope="module")
def inputs(sample_data, tmp_path_factory):
    """Real rasters each algorithm takes: Landsat-7, an S2 + S1 BigEarthNet pair, a PAN/MS pair."""
    folder = tmp_path_factory.mktemp("gate_inputs")
    s2 = bigearthnet_folder(sample_data, "S2", "87_48")
    s1 = bigearthnet_folder(sample_data, "S1", "87_48")
    return {
        "landsat": str(sample_data / "multispectral_dem/L7_ETMs.tif"),
        "s2": str(
            stack([next(s2.glob(f"*_{b}.tif")) for b in S2_BANDS], folder / "s2.vrt", S2_BANDS)
        ),
        "s1": str(
            stack(
                [next(s1.glob(f"*_{p}.tif")) for p in ("VV", "VH")], folder / "s1.vrt", ["VV", "VH"]
            )
        ),
        "pan": str(sample_data / "pan_ms/pan1.tif"),
        "ms": str(sample_data / "pan_ms/ms1.tif"),
    }


@pytest.mark.parametrize("algorithm", sorted(REFUSALS))
def test_an_algorithm_without_its_bundled_model_refuses_before_any_work(
    run_algorithm, gated, inputs, monkeypatch, tmp_path, algorithm
):
    import time

    monkeypatch.setitem(PLUGIN_MODELS, "folder", gated[0])
    what, parameters = REFUSALS[algorithm]
    parameters = {key: value.format(**inputs) for key, value in parameters.items()}
    output = tmp_path / "out" / "result.tif"
    started = time.perf_counter()
    with pytest.raises(QgsProcessingException) as raised:
        run_algorithm(algorithm, {**parameters, "OUTPUT": str(output)})
    message = str(raised.value)
    assert f"There is no bundled model for {what} input" in message
    assert "msGFM > Finetune" in message and "model file (.onnx)" in message
    assert not (tmp_path / "out").exists()  # nothing written, nothing started
    assert time.perf_counter() - started < 10
    help_text = QgsApplication.processingRegistry().algorithmById(algorithm).shortHelpString()
    assert "<b>Bundled model</b>: none" in help_text and "msGFM > Finetune" in help_text


def test_with_no_embedding_model_left_the_encoder_refuses_and_says_how_to_get_one(
    run_algorithm, gated, inputs, monkeypatch, tmp_path
):
    monkeypatch.setitem(PLUGIN_MODELS, "folder", gated[0])
    with pytest.raises(QgsProcessingException) as raised:
        run_algorithm(
            "msgfm:extractembeddings",
            {"INPUT": inputs["s2"], "OUTPUT": str(tmp_path / "out" / "s2.tif")},
        )
    message = str(raised.value)
    assert "There is no bundled embedding model" in message
    assert "msgfm export" in message and "msGFM > Finetune" in message
    assert not (tmp_path / "out").exists()
    help_text = (
        QgsApplication.processingRegistry().algorithmById("msgfm:findsimilar").shortHelpString()
    )
    assert "<b>Bundled models</b>: none" in help_text and "msgfm export" in help_text


def test_msgfm_predict_names_a_model_file_that_is_not_there(gated, inputs, tmp_path, capsys):
    from backend.cli import main

    models, _ = gated
    out = tmp_path / "classes.tif"
    argv = ["predict", "--model", str(models / "segmentation.onnx"), "--input"]
    assert main([*argv, f"landsat={inputs['landsat']}", "--out", str(out), "--quiet"]) != 0
    error = capsys.readouterr().err
    assert str(models / "segmentation.onnx") in error
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.qgis_process
def test_the_demo_runs_only_the_models_the_zip_bundles(gated, sample_data, tmp_path):
    models, _ = gated
    zip_path = build.build(tmp_path / "dist", models=models)
    out = tmp_path / "demo_output"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QGIS_", "PYTHON"))}
    env.update(
        MSGFM_DEMO_ZIP=str(zip_path),
        MSGFM_DEMO_OUT=str(out),
        MSGFM_VENV=sys.prefix,
        MSGFM_DATA_DIR=str(sample_data.parent),  # the sample data of this session
        HOME=str(tmp_path),
        PYTHONPATH=str(ROOT),
    )
    result = subprocess.run(
        ["bash", str(ROOT / "scripts/demo.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    skipped = {
        "segmentation": "msgfm:segmentlandcover",
        "classification": "msgfm:classifyscenes",
        "cloud-removal": "msgfm:removeclouds",
        "pansharpening": "msgfm:pansharpen",
    }
    skipped.update({"embedding": "msgfm:extractembeddings"})
    for task, algorithm in skipped.items():
        assert f"== skipped: no bundled {task} model for {algorithm}" in result.stdout
    assert "== skipped: no bundled embedding model for msgfm:detectchange" in result.stdout
    # What needs no model runs: Classify with examples on the pixel's bands, and nothing else.
    ran = re.findall(r"^== (msgfm:\w+) ==$", result.stdout, flags=re.M)
    assert ran == ["msgfm:classifywithexamples"], result.stdout
    # No model information (no model ships); the classifier file of the run that needs none.
    assert sorted(p.name for p in out.glob("*.json")) == ["cover_classifier.json"]
    saved = json.loads((out / "cover_classifier.json").read_text(encoding="utf-8"))
    assert saved["encoder"] is None and saved["input"]["sensor"] == "s2"
    assert (out / "contact_sheet.png").is_file()  # its one row: the bands-only class map


def test_the_maintainers_gate_command_on_a_copy_of_the_shipped_models(tmp_path):
    """``msgfm accept --render --gate`` with the shipped results file, on a copy of the shipped
    folder: the folder stays consistent and the model cards render (a gated task's card says
    why it has no model). Passes before and after the gate is applied to resources/models."""
    from backend.cli import main

    shipped = ROOT / "resources/models"
    models = copy_models(shipped, tmp_path / "models")
    results = ROOT / "docs/acceptance-results.json"
    argv = ["accept", "--render", "--gate", "--results", str(results)]
    argv += ["--doc", str(tmp_path / "acceptance.md"), "--models-dir", str(models)]
    assert main([*argv, "--rejected-dir", str(tmp_path / "rejected")]) == 0
    manifest = check_gated_folder(models)
    verdicts = json.loads(results.read_text(encoding="utf-8"))["models"]
    for name, entry in verdicts.items():
        if entry.get("kind") == "tool":  # ships with no model file: nothing to gate
            assert name not in {e["file"] for e in manifest["rejected"]}
            continue
        if entry["passed"] is not True:  # failed, or not measured
            assert not (models / name).exists(), name
            assert name in {e["file"] for e in manifest["rejected"]}
        elif (shipped / name).exists():
            assert (models / name).exists(), name
    script = [sys.executable, str(ROOT / "scripts/model_cards.py"), "--models", str(models)]
    cards = subprocess.run(
        [*script, "--out", str(tmp_path / "cards")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cards.returncode == 0, cards.stderr
    for entry in manifest["rejected"]:
        card = (tmp_path / "cards" / f"{entry['task']}.md").read_text(encoding="utf-8")
        assert f"`{entry['file']}`" in card and entry["reason"].split(" (")[0] in card, entry
