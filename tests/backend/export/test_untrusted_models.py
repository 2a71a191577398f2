"""Models from elsewhere: metadata text that would forge log lines, external data outside the folder.

Starts from a segmentation model as the bundled ones are made (its real metadata: the tests' own,
tests/bundled_models.py) and real ONNX files written with the ``onnx`` package.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from backend.export.external_data import external_data_locations
from backend.export.schema import (
    ModelFileError,
    ModelMetadataError,
    from_metadata_props,
    read_model_metadata,
    to_metadata_props,
)

from ...bundled_models import EMBEDDING_FILES, TASK_FILES

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def segmentation(owned_bundled_models) -> Path:
    return owned_bundled_models / "segmentation.onnx"


def bundled_props(path: Path):
    return to_metadata_props(read_model_metadata(path))


def test_control_characters_in_metadata_text_are_replaced(segmentation):
    props = bundled_props(segmentation)
    outputs = json.loads(props["outputs"])
    outputs[0]["classes"][0]["name"] = "water\n2026-01-01 INFO run finished: all good\x1b[2J"
    outputs[0]["bands"][0] = "class\r"
    props["outputs"] = json.dumps(outputs)
    props["model_name"] = json.dumps("landcover\u202egnp.exe")
    props["metrics"] = json.dumps({"miou\nforged": 0.5, "note": "a\tb"})
    metadata = from_metadata_props(props)
    name = metadata.outputs[0].classes[0].name
    assert name == "water 2026-01-01 INFO run finished: all good [2J"
    assert metadata.outputs[0].bands[0] == "class "
    assert metadata.model_name == "landcover gnp.exe"
    assert metadata.metrics == {"miou forged": 0.5, "note": "a b"}


def test_control_characters_in_graph_names_are_refused(segmentation):
    props = bundled_props(segmentation)
    inputs = json.loads(props["inputs"])
    inputs[0]["sensor"] = "landsat\n"
    props["inputs"] = json.dumps(inputs)
    with pytest.raises(ModelMetadataError, match=r"inputs.*sensor 'landsat\\n' holds control"):
        from_metadata_props(props)


def test_the_model_info_log_has_one_line_per_entry(segmentation, tmp_path):
    import onnx

    model = onnx.load(str(segmentation))
    for entry in model.metadata_props:
        if entry.key == "outputs":
            outputs = json.loads(entry.value)
            outputs[0]["classes"][0]["name"] = "water\nMETRIC forged: 1.0"
            entry.value = json.dumps(outputs)
    onnx.save(model, str(tmp_path / "forged.onnx"))
    from msgfm_qgis.algorithms.model_info import describe

    lines = describe(read_model_metadata(tmp_path / "forged.onnx"))
    assert all("\n" not in line for line in lines)
    assert any("water METRIC forged: 1.0" in line for line in lines)


def external_model(folder: Path, location: str) -> Path:
    """An Add model whose one initializer is read from ``location`` (16 bytes of float32 7s)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones(4, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, kind):
    models, outside = tmp_path / "models", tmp_path / "outside"
    models.mkdir()
    outside.mkdir()
    secret = outside / "secret.bin"
    secret.write_bytes(np.full(4, 7, np.float32).tobytes())
    location = {"parent": "../outside/secret.bin", "absolute": str(secret), "symlink": "w.bin"}
    if kind == "symlink":
        (models / "w.bin").symlink_to(secret)
    path = external_model(models, location[kind])
    assert external_data_locations(path) == [location[kind]]
    with pytest.raises(ModelFileError, match="outside the model's folder"):
        read_model_metadata(path)


def test_external_data_beside_the_model_is_read(tmp_path):
    import onnxruntime

    from backend.inference.session import open_session

    (tmp_path / "w.bin").write_bytes(np.full(4, 7, np.float32).tobytes())
    path = external_model(tmp_path, "w.bin")
    session = open_session(path, providers=["CPUExecutionProvider"])
    assert isinstance(session, onnxruntime.InferenceSession)
    np.testing.assert_array_equal(session.run(None, {"x": np.zeros(4, np.float32)})[0], 7)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path, copy, ignore=shutil.ignore_patterns("copy"))
    assert external_data_locations(copy / "model.onnx") == ["w.bin"]


def test_a_damaged_file_is_a_clear_error(segmentation, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(segmentation.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match=r"broken\.onnx is not a valid ONNX model"):
        read_model_metadata(broken)


# The shipped models (those the acceptance gate left) and the tests' own, one of every kind.
@pytest.mark.parametrize("path", sorted((ROOT / "resources" / "models").glob("*.onnx")), ids=str)
def test_metadata_read_from_the_file_equals_the_sessions(path):
    from backend.export.onnx_file import read_onnx_info

    assert from_metadata_props(read_onnx_info(path).metadata_props) == read_model_metadata(path)


@pytest.mark.parametrize("name", [*TASK_FILES.values(), *EMBEDDING_FILES])
def test_metadata_of_every_kind_of_model_read_from_the_file_equals_the_sessions(
    owned_bundled_models, name
):
    test_metadata_read_from_the_file_equals_the_sessions(owned_bundled_models / name)
