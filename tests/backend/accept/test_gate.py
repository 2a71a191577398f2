"""The gate's bookkeeping when one model is rebuilt and scored alone (``msgfm accept --only``):
a rebuilt model that passes replaces its old rejection, and the other models' verdicts stay."""

import json

from backend.accept.gate import apply_gate
from backend.accept.suite import thresholds_table
from backend.files import sha256_file


def _verdict(task, passed):
    check = {"check": "sam_over_classical_deg", "value": -0.1 if passed else 0.7}
    check.update({"passed": passed, "note": ""})
    return {"task": task, "passed": passed, "scenes": [{"scene": "s", "checks": [check]}]}


def test_a_rebuilt_model_that_passes_replaces_its_rejection(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "pansharpening.onnx").write_bytes(b"rebuilt model bytes")
    (models / "embedding.onnx").write_bytes(b"embedding model bytes")
    manifest = {
        "files": [
            {"file": name, "task": task, "sha256": sha256_file(models / name)}
            for name, task in (
                ("embedding.onnx", "embedding"),
                ("pansharpening.onnx", "pansharpening"),
            )
        ],
        "rejected": [
            {"file": "pansharpening.onnx", "task": "pansharpening", "sha256": "old"},
            {"file": "segmentation.onnx", "task": "segmentation", "sha256": "seg"},
        ],
        "acceptance": {
            "pansharpening.onnx": {"task": "pansharpening", "passed": False},
            "segmentation.onnx": {"task": "segmentation", "passed": False},
            "embedding.onnx": {"task": "embedding", "passed": True},
        },
    }
    (models / "MANIFEST.json").write_text(json.dumps(manifest), encoding="utf-8")
    results = {
        "thresholds": thresholds_table(),
        "models": {"pansharpening.onnx": _verdict("pansharpening", True)},
    }

    assert apply_gate(results, models, tmp_path / "rejected") == []

    after = json.loads((models / "MANIFEST.json").read_text(encoding="utf-8"))
    assert (models / "pansharpening.onnx").is_file()
    assert [e["file"] for e in after["files"]] == ["embedding.onnx", "pansharpening.onnx"]
    assert [e["file"] for e in after["rejected"]] == ["segmentation.onnx"]
    assert after["acceptance"] == {
        "pansharpening.onnx": {"task": "pansharpening", "passed": True},
        "segmentation.onnx": {"task": "segmentation", "passed": False},
        "embedding.onnx": {"task": "embedding", "passed": True},
    }


def test_a_rebuilt_model_that_fails_is_moved_out_again(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "pansharpening.onnx").write_bytes(b"rebuilt model bytes")
    entry = {
        "file": "pansharpening.onnx",
        "task": "pansharpening",
        "sha256": sha256_file(models / "pansharpening.onnx"),
    }
    manifest = {"files": [entry], "rejected": [{**entry, "sha256": "old"}]}
    (models / "MANIFEST.json").write_text(json.dumps(manifest), encoding="utf-8")
    results = {
        "thresholds": thresholds_table(),
        "models": {"pansharpening.onnx": _verdict("pansharpening", False)},
    }

    assert apply_gate(results, models, tmp_path / "rejected") == ["pansharpening.onnx"]

    after = json.loads((models / "MANIFEST.json").read_text(encoding="utf-8"))
    assert after["files"] == [] and (tmp_path / "rejected/pansharpening.onnx").is_file()
    # The new rejection supersedes the earlier build's.
    assert [e["sha256"] for e in after["rejected"]] == [entry["sha256"]]
    assert after["acceptance"]["pansharpening.onnx"]["passed"] is False
