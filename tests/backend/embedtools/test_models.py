"""Finding the embedding model for an input among the .onnx files of a folder."""

from __future__ import annotations

import pytest

from backend.embedtools.models import embedding_models
from backend.sensor_resolver import BandMatchError, choose_sensor
from backend.sensors import get_sensor

S2 = list(get_sensor("s2").bands)


def test_only_single_input_embedding_models_are_candidates(embedding_model_folder):
    models = embedding_models(embedding_model_folder)
    assert [(m.path.name, m.sensor) for m in models] == [
        ("dsm_embeddings.onnx", "dsm"),
        ("embedding.onnx", "s2"),
        ("rgb_embeddings.onnx", "rgb"),
        ("sar_embeddings.onnx", "sar"),
    ]
    assert all(m.metadata.outputs[0].stride == 32 for m in models)


def facts(names, hints=(), medians=None, spreads=None):
    from backend.sensor_resolver import RasterBand, RasterFacts

    return RasterFacts(
        label="layer 'x'",
        bands=tuple(RasterBand(n) for n in names),
        name_hints=tuple(hints),
        medians=medians,
        spreads=spreads,
    )


@pytest.mark.parametrize(
    ("names", "sensor"),
    [
        (S2, "s2"),
        (["VV", "VH"], "sar"),
        (["Red", "Green", "Blue"], "rgb"),
        # A 13-band L1C stack: the 12 model bands are found by name (B10 is not used).
        ([*S2[:10], "B10", *S2[10:]], "s2"),
    ],
)
def test_the_model_is_chosen_by_the_bands(embedding_model_folder, names, sensor):
    sensors = [m.sensor for m in embedding_models(embedding_model_folder)]
    assert choose_sensor(facts(names), sensors) == sensor


def test_the_sensor_can_be_named(embedding_model_folder):
    sensors = [m.sensor for m in embedding_models(embedding_model_folder)]
    assert choose_sensor(facts([""] * 12), sensors, requested="sar") == "sar"
    with pytest.raises(BandMatchError, match="no model for sensor 'pan'"):
        choose_sensor(facts([""]), sensors, requested="pan")


def test_no_fitting_model_lists_the_models_there_are(embedding_model_folder):
    sensors = [m.sensor for m in embedding_models(embedding_model_folder)]
    with pytest.raises(BandMatchError) as error:
        choose_sensor(facts(["a", "b", "c", "d", "e"]), sensors)
    message = str(error.value)
    assert "fit no known sensor" in message and "'sar'" in message


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


@pytest.mark.parametrize(
    ("layer_name", "sensor"),
    [
        ("S1A__IW___D_20170309T054356_VV_grd_mli_geo_norm_db", "sar_vv"),
        ("olinda_dem_utm25s", "dem"),
        ("srtm-tile", "dem"),  # a word of the DEM sensor
        ("sigma0_vv", "sar_vv"),
    ],
)
def test_the_layer_name_decides_between_one_band_sensors(layer_name, sensor):
    assert choose_sensor(facts([""], [layer_name]), ["dem", "sar_vv"]) == sensor
    # Band names, where the layer has them, come first.
    assert choose_sensor(facts(["VV"], ["dem"]), ["dem", "sar_vv"]) == "sar_vv"


def test_a_one_band_raster_nothing_names_is_an_ambiguity_not_a_file_order_choice():
    with pytest.raises(BandMatchError, match="fits more than one sensor"):
        choose_sensor(facts([""], ["scene"]), ["dem", "sar_vv"])
