"""The recipe of the bundled default models, end to end on the real sample data (tiny steps)."""

from __future__ import annotations

import io
import json
import shutil

import pytest

from backend.data.manifest import load_manifest
from backend.files import sha256_file
from backend.models.config import DEFAULT_SENSORS
from backend.train.defaults import (
    BUDGETS,
    ENCODER_FOLDER,
    INT8_EMBEDDING_SENSORS,
    MANIFEST_FILE,
    TASK_RECIPES,
    DefaultsRecipe,
    run_defaults,
)
from backend.train.finetune import AUGMENTATION

# A narrower encoder than the bundled one keeps the test's exports quick; the recipe is the same.
TEST_CONFIG = {
    "name": "recipe-test",
    "embed_dim": 8,
    "depths": [1, 1, 2, 1],
    "num_heads": [1, 2, 4, 8],
    "num_experts": 2,
}


@pytest.fixture(scope="module")
def recipe_run(sample_data, tmp_path_factory):
    """One tiny-budget run of the recipe (pretraining, encoder, embedding, pan-sharpening)."""
    root = tmp_path_factory.mktemp("defaults")
    config = root / "config.json"
    config.write_text(json.dumps(TEST_CONFIG))
    log = io.StringIO()
    recipe = DefaultsRecipe(
        str(root / "models"),
        str(root / "work"),
        budget="tiny",
        config=str(config),
        seed=0,
        data_root=str(sample_data),
        device="cpu",
        tasks=["pansharpening"],
        command="test",
        log=log,
    )
    manifest = recipe.run()
    return root / "models", manifest, log.getvalue()


def test_recipe_writes_every_file_with_its_checksum(recipe_run):
    out, manifest, _ = recipe_run
    on_disk = json.loads((out / MANIFEST_FILE).read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    names = {entry["file"] for entry in manifest["files"]}
    assert names == {
        "embedding.onnx",
        *(f"embedding-{sensor}.onnx" for sensor in INT8_EMBEDDING_SENSORS),
        "pansharpening.onnx",
        f"{ENCODER_FOLDER}/model.safetensors",
        f"{ENCODER_FOLDER}/meta.json",
    }
    for entry in manifest["files"]:
        path = out / entry["file"]
        assert path.stat().st_size == entry["bytes"]
        assert sha256_file(path) == entry["sha256"]
    # Atomic writes leave no temporary file or folder behind.
    assert not [p for p in out.rglob(".*")]
    assert manifest["steps"] == json.loads(json.dumps(BUDGETS["tiny"].__dict__))
    assert manifest["pretrain"]["steps"] == BUDGETS["tiny"].pretrain_steps
    assert set(manifest["timings_s"]) >= {"pretrain", "finetune pansharpening", "total"}
    # The pretraining corpus left out the held-back pan/MS pairs' ground (none of the sample
    # manifest's scenes covers it; the record says what was checked).
    held = manifest["held_back_from_pretraining"]
    assert held["footprints"] > 0 and held["excluded"] == []


def test_exported_models_describe_their_task(recipe_run):
    from backend.export.schema import read_model_metadata

    out, manifest, _ = recipe_run
    embedding = read_model_metadata(out / "embedding.onnx")
    assert embedding.task == "embedding"
    assert [i.sensor for i in embedding.inputs] == ["s2"]
    sharpening = read_model_metadata(out / "pansharpening.onnx")
    assert sharpening.task == "pansharpening"
    assert sorted(i.sensor for i in sharpening.inputs) == ["ms", "pan"]
    for entry in manifest["files"]:
        if entry["file"].startswith("embedding-"):
            # int8 copies: their cosine to the float embedding on a real scene of the sensor.
            assert entry["int8_mean_cosine"] > 0.9
        elif entry["file"].endswith(".onnx"):
            assert entry["parity_max_abs_diff"] <= 1e-4
    for sensor in INT8_EMBEDDING_SENSORS:
        metadata = read_model_metadata(out / f"embedding-{sensor}.onnx")
        assert [i.sensor for i in metadata.inputs] == [sensor]
        assert metadata.quantization["weights"] == "int8"


def test_a_finished_pretraining_run_is_reused_only_when_leak_free(
    recipe_run, tmp_path, sample_data
):
    out, _, _ = recipe_run
    work = out.parent / "work"
    recipe = DefaultsRecipe(
        str(tmp_path / "models"),
        str(tmp_path / "work"),
        budget="tiny",
        config=str(out.parent / "config.json"),
        data_root=str(sample_data),
        device="cpu",
        tasks=["pansharpening"],
        pretrained=str(work / "pretrain"),
        log=io.StringIO(),
    )
    assert recipe.pretrain() == work / "pretrain"
    assert recipe.pretrain_result["reused"] == str(work / "pretrain")
    # A run whose corpus holds more scenes of a source than the leak-free manifest is refused.
    meta_path = work / "pretrain" / "checkpoint-last" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["manifest"]["sources"][0]["scenes"] += 1
    forged = tmp_path / "forged" / "checkpoint-last"
    shutil.copytree(meta_path.parent, forged)
    (forged / "meta.json").write_text(json.dumps(meta))
    recipe.pretrained = forged.parent
    with pytest.raises(ValueError, match="holds back"):
        recipe.pretrain()


def test_pansharpening_is_scored_beside_its_baseline(recipe_run):
    _, manifest, _ = recipe_run
    (entry,) = [e for e in manifest["files"] if e["task"] == "pansharpening"]
    assert entry["n_train"] > 0 and entry["n_val"] > 0 and entry["n_test"] > 0
    evaluation = entry["evaluation"]
    # Scored on the test split (the checkpoint was chosen on validation).
    assert evaluation["split"]["part"] == "test"
    assert evaluation["n_samples"] == entry["n_test"]
    assert entry["sensors"] == ["pan", "ms"]
    # Two steps teach the model nothing, but both it and the bicubic-style baseline are scored.
    assert evaluation["metrics"]["psnr"] > 0
    assert evaluation["baseline"]["metrics"]["psnr"] > 0


def test_bundled_encoder_finetunes_without_decoders(recipe_run, tmp_path, sample_data):
    from safetensors.torch import load_file

    from backend.models.config import ModelConfig
    from backend.models.tasks import TaskSpec, build_task_model, load_pretrained_encoder

    out, _, _ = recipe_run
    folder = out / ENCODER_FOLDER
    weights = load_file(str(folder / "model.safetensors"))
    assert weights and all(key.startswith("encoder.") for key in weights)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["task"] == "pretrain"
    # Pretrained on every sensor of the sample manifest, paired and unpaired sources alike.
    sources = meta["manifest"]["sources"]
    manifest_sensors = {s for source in sources for s in source["sensors"]}
    assert manifest_sensors == set(load_manifest("samples", sample_data).sensors)
    assert {source["paired"] for source in sources} == {True, False}
    assert meta["model_config"]["sensors"] == list(DEFAULT_SENSORS)
    assert manifest_sensors <= set(DEFAULT_SENSORS)
    config = ModelConfig.from_dict(meta["model_config"])
    model = build_task_model(config, TaskSpec(task="cloud-removal", sensors=["s2", "sar"]))
    report = load_pretrained_encoder(model, folder)
    assert report["loaded"] == ["s2", "sar"]
    key = "encoder.embeddings.s2.proj.weight"
    if key in weights:
        assert (model.state_dict()[key] == weights[key]).all()


def test_task_files_are_the_ones_the_plugin_looks_for():
    from msgfm_qgis.model_checks import TASK_NAMES

    assert {r.task for r in TASK_RECIPES} | {"embedding"} == set(TASK_NAMES)
    from backend.train.data_spec import load_data_spec

    for recipe in TASK_RECIPES:
        assert recipe.file_name == f"{recipe.task}.onnx"
        assert load_data_spec(recipe.data)["layout"]


def test_cli_refuses_an_unknown_task(capsys, tmp_path):
    import argparse

    from backend.train.defaults import add_defaults_arguments

    parser = argparse.ArgumentParser()
    add_defaults_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "m"), "--task", "detection"])
    assert run_defaults(args) == 2
    assert "--task ['detection']" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_rebuilding_some_tasks_keeps_the_other_files_in_the_manifest(tmp_path):
    out = tmp_path / "models"
    out.mkdir()
    previous = {
        "command": "msgfm train-defaults (the encoder's run)",
        "budget": "quick",
        "files": [
            {"file": "segmentation.onnx", "task": "segmentation", "sha256": "old-seg"},
            {"file": "cloud-removal.onnx", "task": "cloud-removal", "sha256": "old-cloud"},
        ],
        "timings_s": {"finetune segmentation": 100.0, "finetune cloud-removal": 400.0},
    }
    (out / MANIFEST_FILE).write_text(json.dumps(previous))
    recipe = DefaultsRecipe(
        str(out), str(tmp_path / "work"), budget="robust", tasks=["cloud-removal"], command="new"
    )
    recipe.files = [{"file": "cloud-removal.onnx", "task": "cloud-removal", "sha256": "new"}]
    recipe.timings = {"finetune cloud-removal": 500.0}
    manifest = recipe.manifest()
    by_file = {f["file"]: f["sha256"] for f in manifest["files"]}
    assert by_file == {"segmentation.onnx": "old-seg", "cloud-removal.onnx": "new"}
    # The top level still describes the encoder's run; the rebuilt entry carries its own.
    assert manifest["command"] == previous["command"] and manifest["budget"] == "quick"
    assert manifest["timings_s"] == {
        "finetune segmentation": 100.0,
        "finetune cloud-removal": 500.0,
    }


def test_rebuilt_recipes_augment_and_balance_their_training():
    recipes = {r.task: r for r in TASK_RECIPES}
    assert recipes["cloud-removal"].augmentation["fresh_clouds"]
    assert recipes["segmentation"].augmentation["class_weight_power"] > 0
    assert recipes["classification"].augmentation["balanced_sampling"]
    for recipe in recipes.values():
        unknown = set(recipe.augmentation) - set(AUGMENTATION)
        assert not unknown, f"{recipe.task}: {unknown}"
