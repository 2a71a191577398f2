"""Reading an ONNX file's metadata and graph declarations from its bytes, checked against
ONNX Runtime and the onnx package on every bundled model, and refused on broken files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from backend.export.onnx_file import OnnxFileError, parse_model, read_onnx_info
from backend.export.schema import ModelFileError, read_model_file, read_model_metadata

from ...bundled_models import EMBEDDING_FILES, TASK_FILES

ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT / "resources/models"
# The shipped models: those ``msgfm accept --gate`` left (it may leave none).
BUNDLED = sorted(MODELS.glob("*.onnx"))


def test_every_task_ships_a_model_or_records_why_not():
    manifest = json.loads((MODELS / "MANIFEST.json").read_text(encoding="utf-8"))
    shipped = {entry["file"] for entry in manifest["files"]}
    rejected = {entry["file"]: entry for entry in manifest.get("rejected", [])}
    assert {p.name for p in BUNDLED} <= shipped
    for name in [*TASK_FILES.values(), *EMBEDDING_FILES]:
        if name in rejected:  # gated out: not in the folder, and the manifest says why
            assert not (MODELS / name).exists() and name not in shipped
            reason = rejected[name]["reason"]
            # A failed model names the checks it failed; a model not measured has none.
            assert reason.startswith("not measured") or rejected[name]["failed_checks"], name
        else:
            assert name in shipped and (MODELS / name).is_file(), name


@pytest.mark.parametrize("name", [*TASK_FILES.values(), *EMBEDDING_FILES])
def test_every_kind_of_model_reads_as_onnxruntime_reads_it(owned_bundled_models, name):
    """The tests' own models (tests/bundled_models.py): every task's graph, whatever ships."""
    test_bundled_model_reads_as_onnxruntime_reads_it(owned_bundled_models / name)


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_bundled_model_reads_as_onnxruntime_reads_it(path):
    info = read_onnx_info(path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert info.metadata_props == session.get_modelmeta().custom_metadata_map
    assert [(i.name, i.shape) for i in info.inputs] == [
        (i.name, i.shape) for i in session.get_inputs()
    ]
    assert [o.name for o in info.outputs] == [o.name for o in session.get_outputs()]
    # The same metadata as with a session, and as the onnx package stores it.
    assert read_model_metadata(path).to_dict() == read_model_metadata(path, session).to_dict()
    proto = onnx.load(str(path))
    assert info.metadata_props == {p.key: p.value for p in proto.metadata_props}
    # Output shapes as the file declares them (ONNX Runtime reports its own inferred ones).
    assert [o.shape for o in info.outputs] == [declared_shape(o) for o in proto.graph.output]


def declared_shape(value) -> list:
    return [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]


def test_exported_test_model_reads_as_onnx_writes_it(probability_model):
    proto = onnx.load(str(probability_model))
    info = read_onnx_info(probability_model)
    assert info.metadata_props == {p.key: p.value for p in proto.metadata_props}
    assert [i.name for i in info.inputs] == [i.name for i in proto.graph.input]
    assert [i.shape for i in info.inputs] == [declared_shape(i) for i in proto.graph.input]


def test_shapes_unknown_negative_and_symbolic(tmp_path):
    """Dimensions as ONNX Runtime reports them: int, name, None for a dimension with neither."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)  # rank unknown
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph)
    entry = model.metadata_props.add()
    entry.key, entry.value = "note", "é ✓"  # non-ASCII text survives
    info = parse_model(model.SerializeToString())
    assert info.inputs[0].name == "x" and info.inputs[0].shape == ["n", 3, None]
    assert info.outputs[0].shape is None
    assert info.metadata_props == {"note": "é ✓"}


@pytest.mark.parametrize("fraction", [0.001, 0.1, 0.5, 0.9, 0.9999])
def test_truncated_model_is_refused(probability_model, tmp_path, fraction):
    data = probability_model.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(OnnxFileError):
        read_onnx_info(cut)
    with pytest.raises(ModelFileError, match=r"cut\.onnx is not a valid ONNX model"):
        read_model_metadata(cut)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_are_refused(tmp_path, seed):
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(np.random.default_rng(seed).bytes(4096))
    with pytest.raises(ModelFileError, match="not a valid ONNX model"):
        read_model_file(noise)


def test_empty_text_and_graphless_files_are_refused(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    text = tmp_path / "text.onnx"
    text.write_text(json.dumps({"task": "segmentation"}))
    tensor = tmp_path / "tensor.onnx"  # valid protobuf, but a TensorProto: no graph
    tensor.write_bytes(onnx.numpy_helper.from_array(np.ones(3, np.float32)).SerializeToString())
    for path, reason in ((empty, "empty"), (text, "wire type"), (tensor, "no graph")):
        with pytest.raises(ModelFileError, match=reason):
            read_model_file(path)
    with pytest.raises(ModelFileError, match="not found"):
        read_model_file(tmp_path / "missing.onnx")


def test_reading_metadata_imports_neither_onnxruntime_nor_onnx(probability_model):
    script = (
        "import sys; from backend.export.schema import read_model_metadata; "
        f"m = read_model_metadata({str(probability_model)!r}); "
        "print(m.task, 'onnxruntime' in sys.modules, 'onnx' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    task, ort_loaded, onnx_loaded = done.stdout.split()
    assert task == "segmentation"
    assert (ort_loaded, onnx_loaded) == ("False", "False")
