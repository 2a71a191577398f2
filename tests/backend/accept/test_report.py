"""docs/acceptance.md is the rendering of its results file; verdicts follow the gating checks."""

import json
from pathlib import Path

from backend.accept.report import render
from backend.accept.suite import model_verdict, thresholds_table

ROOT = Path(__file__).resolve().parents[3]


def test_acceptance_doc_is_the_rendering_of_its_results_and_its_pictures_exist():
    results = json.loads((ROOT / "docs/acceptance-results.json").read_text(encoding="utf-8"))
    assert (ROOT / "docs/acceptance.md").read_text(encoding="utf-8") == render(results)
    for entry in results["models"].values():
        for scene in entry["scenes"]:
            if scene["picture"]:
                assert (ROOT / "docs" / scene["picture"]).is_file(), scene["picture"]


def _scene(*checks):
    return {"scene": "s", "checks": [{"check": c, "value": v, "passed": p} for c, v, p in checks]}


def test_a_failed_gating_check_fails_the_model_a_reported_one_does_not():
    assert model_verdict([_scene(("water_recall", 0.9, True))]) is True
    assert (
        model_verdict(
            [_scene(("water_recall", 0.9, True)), _scene(("clipped_fraction", 0.4, False))]
        )
        is False
    )
    assert model_verdict([_scene(("macro_f1_over_random_forest", -0.1, False))]) is None
    assert model_verdict([_scene(("water_recall", None, None))]) is None


def test_the_report_states_each_threshold_and_each_failure():
    results = {
        "zip": "msgfm_qgis-0.1.0.zip",
        "msgfm_version": "0.1.0",
        "seconds": 1,
        "thresholds": thresholds_table(),
        "scenes": {"s": {"kind": "unseen", "what": "w", "why": "y", "scored_on": "o"}},
        "models": {
            "segmentation.onnx": {
                "task": "segmentation",
                "passed": False,
                "scenes": [
                    {
                        "scene": "s",
                        "status": "run",
                        "note": "",
                        "picture": "acceptance/segmentation_s.png",
                        "figures": {"water_pixels": 120},
                        "checks": [
                            {"check": "water_recall", "value": 0.25, "passed": False, "note": ""}
                        ],
                    }
                ],
            }
        },
    }
    text = render(results)
    assert "| segmentation.onnx | segmentation | **FAIL** | water_recall | — |" in text
    assert "| `water_recall` | 0.25 | >= 0.8 | FAIL |" in text
    assert "![segmentation.onnx on s](acceptance/segmentation_s.png)" in text


def test_a_refused_unphysical_output_fails_the_model_a_refused_input_is_not_runnable():
    from backend.accept.scenes import SCENES
    from backend.accept.suite import SceneResult, refused

    own = refused(
        SceneResult(SCENES[0]), "output 'reflectance' of the model is not a physical image"
    )
    assert own.status == "refused its own output"
    assert own.checks == [{"check": "physical_output", "value": 0.0, "passed": False, "note": ""}]
    assert model_verdict([own.to_dict()]) is False
    other = refused(SceneResult(SCENES[0]), "Layer 'pan' is another sensor")
    assert other.status == "not runnable" and other.checks == []


def test_the_algorithm_error_is_kept_once_without_qgis_noise_or_progress():
    from backend.accept.qgis import _error_text

    output = (
        "QStandardPaths: XDG_RUNTIME_DIR not set\n"
        "Opening the model... 0...10...100 - done. ERROR:\tThe model does not work here\n"
        "ERROR:\tThe model does not work here\n"
    )
    assert _error_text(output) == "The model does not work here"
    assert _error_text("QStandardPaths: x\nsomething failed\n") == "something failed"


def test_the_report_says_what_ships_and_that_a_failing_tool_still_ships():
    tool = "classify-with-examples (bands only)"
    scene = {
        "scene": "s",
        "status": "run",
        "note": "",
        "picture": None,
        "figures": {},
        "checks": [
            {"check": "accuracy_over_majority", "value": -0.07, "passed": False, "note": ""}
        ],
    }
    results = {
        "thresholds": thresholds_table(),
        "scenes": {},
        "shipped": {
            "models": ["pansharpening.onnx"],
            "rejected": [{"file": "segmentation.onnx", "task": "segmentation", "reason": "why"}],
        },
        "models": {
            "pansharpening.onnx": {"task": "pansharpening", "passed": True, "scenes": []},
            "segmentation.onnx": {"task": "segmentation", "passed": False, "scenes": []},
            tool: {
                "task": "classify-with-examples",
                "kind": "tool",
                "passed": False,
                "scenes": [scene],
            },
        },
    }
    text = render(results)
    assert "| pansharpening.onnx | pansharpening | **pass** | — | yes |" in text
    assert "| segmentation.onnx | segmentation | **FAIL** | — | no (gated out) |" in text
    assert (
        f"| {tool} | classify-with-examples | **FAIL** | accuracy_over_majority | "
        "yes (no model file) |" in text
    )
    assert "Models bundled (MANIFEST.json `files`): `pansharpening.onnx`." in text
    assert "| `segmentation.onnx` | segmentation | why |" in text
    assert f"## {tool} (tool, classify-with-examples): **FAIL**" in text
