"""The ONNX metadata contract: round trip, and refusal of bad metadata with the key named."""

from __future__ import annotations

import json

import onnx
import pytest

from backend.export.schema import (
    SCHEMA_VERSION,
    ModelFileError,
    ModelMetadataError,
    embed_metadata,
    from_metadata_props,
    read_model_metadata,
    to_metadata_props,
)


def props_of(path) -> dict:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def rewrite(source, target, **changes) -> None:
    """Copy an ONNX model, setting (value) or deleting (None) raw metadata_props entries."""
    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(target))


def test_round_trip_through_onnx_file(probability_model):
    metadata = read_model_metadata(probability_model)
    assert metadata.task == "segmentation"
    assert metadata.schema_version == SCHEMA_VERSION
    assert metadata.input("rgb").bands == ["R", "G", "B"]
    assert metadata.input("rgb").std == [50.0, 50.0, 50.0]
    output = metadata.outputs[0]
    assert output.kind == "probability"
    assert [c.value for c in output.classes] == [0, 1, 2]
    assert output.classes[1].color.startswith("#")
    # Serialising what was read gives back exactly the stored values.
    assert to_metadata_props(metadata) == props_of(probability_model)


def test_every_value_is_json(probability_model):
    for key, value in props_of(probability_model).items():
        json.loads(value)  # raises if any key is not JSON text
        assert key


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("task", None, "missing"),
        ("tile_size", None, "missing"),
        ("tile_size", '"256"', "must be an integer"),
        ("tile_size", "4", ">= 8"),
        ("default_overlap", "1.5", "fraction"),
        ("task", '"detection"', "must be one of"),
        ("inputs", "{", "not valid JSON"),
        ("inputs", '{"name": "rgb"}', "JSON list"),
        ("schema_version", str(SCHEMA_VERSION + 1), "update the msGFM plugin"),
        ("schema_version", '"one"', "must be an integer"),
        ("product_levels", '{"landsat": ["L2A"]}', "must map input sensors"),
        ("product_levels", '{"rgb": "L2A"}', "lists of product levels"),
    ],
)
def test_bad_metadata_is_refused_naming_the_key(probability_model, tmp_path, key, value, message):
    broken = tmp_path / "broken.onnx"
    rewrite(probability_model, broken, **{key: value})
    with pytest.raises(ModelMetadataError) as info:
        read_model_metadata(broken)
    assert info.value.key == key
    assert f"'{key}'" in str(info.value)
    assert message in str(info.value)


def test_band_count_must_match_mean_std(probability_model):
    props = props_of(probability_model)
    inputs = json.loads(props["inputs"])
    inputs[0]["mean"] = [1.0, 2.0]
    props["inputs"] = json.dumps(inputs)
    with pytest.raises(ModelMetadataError, match="'mean' must be 3 numbers"):
        from_metadata_props(props)


def test_metadata_must_agree_with_the_graph(probability_model, tmp_path):
    props = props_of(probability_model)
    inputs = json.loads(props["inputs"])
    inputs[0]["name"] = "s2"
    broken = tmp_path / "renamed.onnx"
    rewrite(probability_model, broken, inputs=json.dumps(inputs))
    with pytest.raises(ModelMetadataError, match="does not have"):
        read_model_metadata(broken)


def test_onnx_without_msgfm_metadata(probability_model, tmp_path):
    plain = tmp_path / "plain.onnx"
    model = onnx.load(str(probability_model))
    del model.metadata_props[:]
    onnx.save(model, str(plain))
    with pytest.raises(ModelMetadataError, match="not an msGFM model"):
        read_model_metadata(plain)


def test_corrupt_or_missing_file(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not a protobuf model" * 10)
    with pytest.raises(ModelFileError, match=r"corrupt\.onnx is not a valid ONNX model"):
        read_model_metadata(corrupt)
    with pytest.raises(ModelFileError, match="not found"):
        read_model_metadata(tmp_path / "missing.onnx")


def test_embed_refuses_invalid_metadata(probability_model):
    metadata = read_model_metadata(probability_model)
    metadata.tile_size = 0
    with pytest.raises(ModelMetadataError, match="'tile_size'"):
        embed_metadata(onnx.load(str(probability_model)), metadata)


def test_an_optional_input_is_stored_only_when_set(probability_model, tmp_path):
    from dataclasses import replace

    metadata = read_model_metadata(probability_model)
    assert "optional" not in json.loads(to_metadata_props(metadata)["inputs"])[0]
    with pytest.raises(ModelMetadataError, match="at least one input must be required"):
        to_metadata_props(replace(metadata, inputs=[replace(metadata.inputs[0], optional=True)]))
