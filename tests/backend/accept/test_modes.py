"""A mode run without some inputs (cloud removal without SAR): its verdict is its own, the gate
records it, the engine refuses the mode where it failed, and the report says so."""

import json

import pytest

from backend.accept.gate import apply_gate
from backend.accept.report import render
from backend.accept.scenes import by_key
from backend.accept.suite import mode_verdicts, model_verdict, scene_table, thresholds_table
from backend.inference.accepted_modes import refused_without


def _scene(key, passed, without=()):
    check = {"check": "physical_output", "value": 1.0 if passed else 0.0, "passed": passed}
    scene = {"scene": key, "status": "run", "note": "", "figures": {}, "picture": None}
    scene["checks"] = [{**check, "note": ""}]
    return {**scene, "without": list(without)} if without else scene


def test_the_s2_only_rows_are_the_scenes_without_sar():
    scenes = by_key()
    for key in ("bigearthnet_extra_43_47", "bigearthnet_87_48_without_sar"):
        assert scenes[key].without == ("sar",) and not scenes[key].extra
    assert scenes["bigearthnet_87_48"].without == () and scenes["bigearthnet_87_48"].extra


def test_a_failed_mode_leaves_the_model_verdict_to_its_paired_rows():
    scenes = [_scene("pair", True), _scene("s2_only", False, ("sar",))]
    assert model_verdict(scenes) is True
    assert mode_verdicts(scenes) == {"without sar": False}
    assert mode_verdicts([_scene("pair", True)]) == {}


def test_the_gate_records_the_mode_and_the_engine_refuses_it(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    model = models / "cloud-removal.onnx"
    model.write_bytes(b"model bytes")
    manifest = {"files": [{"file": model.name, "task": "cloud-removal"}]}
    (models / "MANIFEST.json").write_text(json.dumps(manifest), encoding="utf-8")
    scenes = [_scene("bigearthnet_87_48", True), _scene("bigearthnet_extra_43_47", False, ["sar"])]
    results = {
        "thresholds": thresholds_table(),
        "models": {
            model.name: {
                "task": "cloud-removal",
                "passed": model_verdict(scenes),
                "modes": mode_verdicts(scenes),
                "scenes": scenes,
            }
        },
    }
    assert refused_without(model, "sar") is None  # no record yet: the metadata decides

    assert apply_gate(results, models, tmp_path / "rejected") == []

    after = json.loads((models / "MANIFEST.json").read_text(encoding="utf-8"))
    assert after["acceptance"][model.name] == {
        "task": "cloud-removal",
        "passed": True,
        "modes": {"without sar": False},
    }
    assert "failed its acceptance checks" in refused_without(model, "sar")
    copy = tmp_path / "elsewhere" / model.name  # a model file outside the bundled folder
    copy.parent.mkdir()
    copy.write_bytes(model.read_bytes())
    assert refused_without(copy, "sar") is None
    results.update(scenes=scene_table(), shipped={"models": [model.name], "rejected": []})
    doc = render(results)
    assert (
        "| cloud-removal.onnx, run without sar | cloud-removal | **FAIL** | physical_output | "
        "refused (the algorithm stops before any work) |" in doc
    )
    assert "| cloud-removal.onnx | cloud-removal | **pass** | — | yes |" in doc
    assert "### bigearthnet_extra_43_47 (run without sar)" in doc


@pytest.mark.parametrize("verdict, refused", [(True, False), (None, True)])
def test_a_mode_is_offered_only_when_it_passed(tmp_path, verdict, refused):
    model = tmp_path / "cloud-removal.onnx"
    model.write_bytes(b"x")
    record = {"acceptance": {model.name: {"passed": True, "modes": {"without sar": verdict}}}}
    (tmp_path / "MANIFEST.json").write_text(json.dumps(record), encoding="utf-8")
    assert (refused_without(model, "sar") is not None) is refused
