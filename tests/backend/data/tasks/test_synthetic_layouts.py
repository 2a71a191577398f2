"""The BigEarthNet and pan-sharpening readers on synthetic folders of known values (no download).

The folders come from ``tests/data/<name>/data.py`` (see ``tests/data/README.md``); the same
readers on the real samples are tested in ``test_bigearthnet.py`` and ``test_spacenet.py``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from backend.data.tasks.bigearthnet import BIGEARTHNET19_CLASSES, BigEarthNetDataset
from backend.data.tasks.spacenet import PanSharpeningDataset, find_pan_ms_pairs

DATA = Path(__file__).resolve().parents[3] / "data"


def generator(name: str):
    spec = importlib.util.spec_from_file_location(f"synthetic_{name}_spec", DATA / name / "data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BEN = generator("bigearthnet")
PAN_MS = generator("pan_ms")


@pytest.fixture(scope="module")
def ben(synthetic_data) -> Path:
    return synthetic_data("bigearthnet")


@pytest.fixture(scope="module")
def pan_ms(synthetic_data) -> Path:
    return synthetic_data("pan_ms")


def class_names(target: np.ndarray):
    return [BIGEARTHNET19_CLASSES[i] for i in np.flatnonzero(target)]


def test_every_s2_band_is_read_onto_the_10m_grid_with_its_value(ben):
    dataset = BigEarthNetDataset(ben / "S2")
    assert len(dataset) == 3 and dataset.sensors == ["s2"]
    for index in range(3):
        s2 = dataset[index]["inputs"]["s2"]
        assert s2.shape == (12, 120, 120)  # 60 m (20 px) and 20 m (60 px) bands upsampled
        expected = [BEN.band_value(index, band) for band in BEN.S2_BANDS]
        np.testing.assert_allclose(s2.reshape(12, -1).min(axis=1), expected)
        np.testing.assert_allclose(s2.reshape(12, -1).max(axis=1), expected)


def test_s1_pairs_follow_the_metadata_and_unpaired_s2_patches_are_left_out(ben):
    dataset = BigEarthNetDataset(ben / "S2", ben / "S1")
    assert [p[0] for p in dataset.patches] == list(BEN.S1_FOR.values())
    assert dataset.sensors == ["s2", "sar"]
    for index in range(2):
        sar = dataset[index]["inputs"]["sar"]
        assert sar.shape == (2, 120, 120)
        np.testing.assert_array_equal(np.unique(sar[0]), [-10.0 - index])
        np.testing.assert_array_equal(np.unique(sar[1]), [-17.0 - index])


def test_corine_labels_become_the_19_class_targets(ben):
    multi = BigEarthNetDataset(ben / "S2")
    assert class_names(multi.target(0)) == [
        "Coniferous forest",
        "Mixed forest",
        "Transitional woodland, shrub",
    ]
    assert class_names(multi.target(1)) == ["Arable land"]  # the road label has no class
    assert class_names(multi.target(2)) == ["Marine waters"]
    single = BigEarthNetDataset(ben / "S2", label_mode="single")
    assert int(single.target(0)) == BIGEARTHNET19_CLASSES.index("Coniferous forest")


def test_patches_are_their_own_holdout_units(ben):
    units = BigEarthNetDataset(ben / "S2").holdout_units()
    assert [u.group for u in units] == list(BEN.LABELS)
    assert {(u.height, u.width) for u in units} == {(120, 120)}


def test_an_s1_folder_without_its_s2_name_is_refused(ben, tmp_path):
    s1 = tmp_path / "S1" / "S1B_no_partner"
    s1.mkdir(parents=True)
    (s1 / "S1B_no_partner_labels_metadata.json").write_text(json.dumps({"labels": []}))
    with pytest.raises(ValueError, match="no 'corresponding_s2_patch'"):
        BigEarthNetDataset(ben / "S2", tmp_path / "S1")


def test_pan_ms_pairs_are_matched_by_name_and_a_lone_pan_is_ignored(pan_ms):
    pairs = find_pan_ms_pairs(pan_ms)
    assert [(p.name, m.name) for p, m in pairs] == [
        ("pan1.tif", "ms1.tif"),
        ("pan2.tif", "ms2.tif"),
    ]


def test_reduced_resolution_target_is_the_original_ms_and_replication_is_undone(pan_ms):
    tile = 8
    dataset = PanSharpeningDataset.from_folder(pan_ms, tile_size=tile)
    assert dataset.ratios == [PAN_MS.RATIO, PAN_MS.RATIO]  # ms2 is stored 2x replicated
    per_pair = (PAN_MS.SIZE_M // PAN_MS.RATIO // tile) ** 2
    assert len(dataset) == 2 * per_pair
    for index in (0, per_pair + 4):
        sample = dataset[index]
        pair, row, col = dataset.tiles[index]
        truth = PAN_MS.ms_values(pair + 1)[:, row : row + tile, col : col + tile]
        np.testing.assert_allclose(sample["target"], truth, rtol=1e-6)
        assert sample["inputs"]["pan"].shape == (1, tile, tile)
        assert sample["inputs"]["ms"].shape == (4, tile, tile)
        # The degraded MS input is a blur of the target, not the target itself.
        assert not np.allclose(sample["inputs"]["ms"], sample["target"])
    assert {u.group for u in dataset.holdout_units()} == {"pan1", "pan2"}


def test_full_resolution_samples_are_on_the_pan_grid_without_target(pan_ms):
    dataset = PanSharpeningDataset.from_folder(pan_ms, mode="full", tile_size=32)
    sample = dataset[0]
    assert "target" not in sample
    np.testing.assert_allclose(sample["inputs"]["pan"][0], PAN_MS.pan_values(1)[:32, :32])
    grid = dataset.model_grid(0)
    assert (grid.width, grid.height) == (PAN_MS.SIZE_M, PAN_MS.SIZE_M)


def test_ms_band_names_must_match_the_file(pan_ms):
    with pytest.raises(ValueError, match="4 bands but ms_bands names 3"):
        PanSharpeningDataset.from_folder(pan_ms, ms_bands=("B", "G", "R"))
