"""The acceptance scenes are ground that the bundled models never trained on (leak check)."""

import json
from pathlib import Path

import pytest

from backend.accept.scenes import (
    HELD_OUT,
    PRETRAINING_READ,
    SCENES,
    UNSEEN,
    held_back,
    units_touching,
)
from backend.data.manifest import load_manifest
from backend.train.leakage import leaks

ROOT = Path(__file__).resolve().parents[3]
PRETRAINING = ["samples", "samples_s2"]
FINETUNING_TASKS = ("classification", "segmentation", "cloud-removal", "pansharpening")


def _bundled_models():
    manifest = json.loads((ROOT / "resources/models/MANIFEST.json").read_text())
    return [entry for entry in manifest["files"] if entry.get("task") in FINETUNING_TASKS]


def _finetuning_parts(entry, sample_data):
    """Every holdout unit of a bundled model's finetuning data, and those of its training split."""
    from backend.data.tasks import split
    from backend.train.data_spec import build_dataset, load_data_spec

    spec = load_data_spec(entry["data"])
    dataset = build_dataset(spec, entry["task"], str(sample_data))
    how = entry["evaluation"]["split"]
    parts = split(
        dataset,
        how["val_fraction"],
        how["seed"],
        test_fraction=how["test_fraction"],
        fold=how["fold"],
    )
    return list(dataset.holdout_units()), parts.train.holdout_units()


def test_every_scene_is_described_and_its_files_exist(sample_data):
    assert {scene.kind for scene in SCENES} <= {UNSEEN, PRETRAINING_READ, HELD_OUT}
    assert len({scene.key for scene in SCENES}) == len(SCENES)
    for scene in SCENES:
        assert scene.what and scene.why and scene.scored_on
        for path in scene.paths(sample_data):
            assert path.is_file(), path


@pytest.mark.parametrize("manifest", PRETRAINING)
def test_pretraining_reads_only_the_scenes_said_to_be_pretraining_read(manifest, sample_data):
    parsed = load_manifest(manifest, sample_data)
    for scene in SCENES:
        found = leaks(parsed, held_back(scene, sample_data))
        if scene.kind == PRETRAINING_READ and manifest == "samples":
            assert found, f"{scene.key} is said to be read by pretraining, but is not"
        elif scene.kind != PRETRAINING_READ:
            assert found == {}, f"{scene.key} leaks into pretraining manifest {manifest}: {found}"


def test_no_bundled_model_trained_or_validated_on_an_acceptance_scene(sample_data):
    for entry in _bundled_models():
        every_unit, training = _finetuning_parts(entry, sample_data)
        for scene in SCENES:
            if entry["task"] not in scene.tasks:
                continue
            held = held_back(scene, sample_data)
            if scene.kind == HELD_OUT:
                if scene.key == "strata_test":
                    continue  # the test band of the same raster: the split itself separates it
                # Held out by the split (in the data, not in its training part) or left out of
                # the data altogether.
                assert units_touching(training, held) == [], (scene.key, entry["file"])
            else:
                assert units_touching(every_unit, held) == [], (scene.key, entry["file"])
