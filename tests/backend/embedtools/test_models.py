"""Finding the embedding model for an input among the .onnx files of a folder."""

from __future__ import annotations

import pytest

from backend.embedtools.models import (
    EmbeddingModel,
    NoEmbeddingModelError,
    choose_embedding_model,
    embedding_models,
)


def test_only_single_input_embedding_models_are_candidates(embedding_model_folder):
    models = embedding_models(embedding_model_folder)
    assert [(m.path.name, m.sensor) for m in models] == [
        ("dsm_embeddings.onnx", "dsm"),
        ("embedding.onnx", "s2"),
        ("rgb_embeddings.onnx", "rgb"),
        ("sar_embeddings.onnx", "sar"),
    ]
    assert all(m.metadata.outputs[0].stride == 32 for m in models)


@pytest.mark.parametrize(
    ("count", "names", "sensor"),
    [
        (12, [], "s2"),
        (2, ["", ""], "sar"),
        (3, ["Red", "Green", "Blue"], "rgb"),
        (1, [""], "dsm"),
        # A 13-band L1C stack: the 12 model bands are found by name (B10 is not used).
        (13, [f"B{n:02d}" for n in range(1, 13)] + ["B8A"], "s2"),
    ],
)
def test_the_model_is_chosen_by_the_bands(embedding_model_folder, count, names, sensor):
    models = embedding_models(embedding_model_folder)
    assert choose_embedding_model(models, count, names).sensor == sensor


def test_the_sensor_can_be_named(embedding_model_folder):
    models = embedding_models(embedding_model_folder)
    assert choose_embedding_model(models, 12, [], sensor="sar").sensor == "sar"
    with pytest.raises(NoEmbeddingModelError, match="no embedding model for sensor 'pan'"):
        choose_embedding_model(models, 1, [], sensor="pan")


def test_no_fitting_model_lists_the_models_there_are(embedding_model_folder):
    models = embedding_models(embedding_model_folder)
    with pytest.raises(NoEmbeddingModelError) as error:
        choose_embedding_model(models, 5, ["a", "b", "c", "d", "e"])
    message = str(error.value)
    assert "no embedding model takes a raster of 5 band(s)" in message
    assert "sar_embeddings.onnx (sar: 2 bands VV, VH)" in message


def test_the_embedding_tools_import_neither_torch_nor_scikit_learn():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "import backend.embedtools.maps, backend.embedtools.models, backend.embedtools.alignment\n"
        "import backend.embedtools.classifier_file\n"
        "heavy = sorted(m for m in ('torch', 'sklearn', 'onnxruntime') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def _model(sensor: str, bands, file_name: str) -> EmbeddingModel:
    """A model as the chooser sees it: a file name and its one input's sensor and bands."""
    from pathlib import Path
    from types import SimpleNamespace

    metadata = SimpleNamespace(inputs=[SimpleNamespace(sensor=sensor, bands=list(bands))])
    return EmbeddingModel(Path(file_name), metadata)


@pytest.mark.parametrize(
    ("layer_name", "sensor"),
    [
        ("S1A__IW___D_20170309T054356_VV_grd_mli_geo_norm_db", "sar_vv"),
        ("olinda_dem_utm25s", "dem"),
        ("srtm-tile", "dem"),  # an alias of the DEM band
        ("sigma0_vv", "sar_vv"),
        ("scene", "dem"),  # no hint: the first by file name
    ],
)
def test_the_layer_name_decides_between_models_of_one_band_count(layer_name, sensor):
    models = [_model("dem", ["DEM"], "embedding-dem.onnx"), _model("sar_vv", ["VV"], "vv.onnx")]
    assert choose_embedding_model(models, 1, [""], layer_name=layer_name).sensor == sensor
    # Band names, where the layer has them, come first.
    assert choose_embedding_model(models, 1, ["VV"], layer_name="dem").sensor == "sar_vv"
