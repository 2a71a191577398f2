"""Cloud simulation and the SEN12MS-CR reader, on real BigEarthNet S2/S1 pairs in that layout."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from backend.data.tasks.clouds import CloudSettings, simulate_clouds
from backend.data.tasks.sen12mscr import (
    SEN12MSCRDataset,
    SimulatedCloudRemovalDataset,
    find_sen12mscr_triplets,
)
from backend.data.tasks.split import split
from backend.sensors import get_sensor

S2_BANDS = get_sensor("s2").bands


@pytest.fixture(scope="module")
def clear_patch(bigearthnet_pairs):
    return bigearthnet_pairs[0]["inputs"]["s2"]


def test_cloud_simulation_is_seeded(clear_patch):
    first = simulate_clouds(clear_patch, S2_BANDS, seed=7)
    again = simulate_clouds(clear_patch, S2_BANDS, seed=7)
    other = simulate_clouds(clear_patch, S2_BANDS, seed=8)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[2], again[2])
    assert (first[2] != other[2]).mean() > 0.1


@pytest.mark.parametrize("coverage", [0.15, 0.4, 0.7])
def test_cloud_cover_and_thick_cores_match_the_settings(clear_patch, coverage):
    settings = CloudSettings(coverage=coverage, thick_fraction=0.5)
    cloudy, opacity, mask = simulate_clouds(clear_patch, S2_BANDS, seed=1, settings=settings)
    assert cloudy.shape == clear_patch.shape and cloudy.dtype == np.float32
    assert mask.shape == (120, 120) and mask.dtype == bool
    assert abs(mask.mean() - coverage) < 0.02
    assert abs((opacity > 0.999).mean() - coverage * 0.5) < 0.03
    # Clouds brighten the visible bands; outside the mask only faint haze remains.
    blue = S2_BANDS.index("B02")
    assert (cloudy[blue][mask] > clear_patch[blue][mask]).mean() > 0.95
    outside = np.abs(cloudy - clear_patch)[:, ~mask]
    # Opacity <= mask_threshold there; the brightest cloud value is 7800 with +10 % texture.
    assert outside.max() <= settings.mask_threshold * 7800 * 1.1


def test_cloud_simulation_rejects_bands_without_a_cloud_value(clear_patch):
    with pytest.raises(ValueError, match="no default cloud reflectance"):
        simulate_clouds(clear_patch[:2], ["VV", "VH"])
    with pytest.raises(ValueError, match="coverage"):
        CloudSettings(coverage=1.5)


def test_sen12mscr_layout_reads_triplets_and_drops_b10(sen12mscr_root):
    dataset = SEN12MSCRDataset(sen12mscr_root["root"])
    assert len(dataset) == 6
    sample = dataset[
        dataset.triplets.index(next(t for t in dataset.triplets if t[0].endswith("p4")))
    ]
    assert sample["patch"] == "ROIs1158_spring_2_p4"
    s2, sar, target = sample["inputs"]["s2"], sample["inputs"]["sar"], sample["target"]
    assert s2.shape == target.shape == (12, 120, 120) and sar.shape == (2, 120, 120)
    assert s2.dtype == target.dtype == sar.dtype == np.float32
    assert not (target == sen12mscr_root["b10_marker"]).all(axis=(1, 2)).any()
    np.testing.assert_array_equal(target, sen12mscr_root["clears"][sample["patch"]])


def test_sen12mscr_cloud_mask_finds_the_simulated_clouds(sen12mscr_root):
    dataset = SEN12MSCRDataset(sen12mscr_root["root"])
    for index in range(len(dataset)):
        sample = dataset[index]
        truth = sen12mscr_root["masks"][sample["patch"]]
        found = sample["cloud_mask"]
        iou = (found & truth).sum() / max((found | truth).sum(), 1)
        assert iou > 0.8, (sample["patch"], iou)


def test_sen12ms_arrangement_with_one_season_folder_is_found(sen12mscr_root, tmp_path):
    season = tmp_path / "ROIs1158_spring"
    for kind in ("s1", "s2", "s2_cloudy"):
        shutil.copytree(
            sen12mscr_root["root"] / f"ROIs1158_spring_{kind}", season, dirs_exist_ok=True
        )
    triplets = find_sen12mscr_triplets(tmp_path)
    assert len(triplets) == 6
    assert triplets[0][2].parent.name == "s2_1" and triplets[0][3].parent.name == "s2_cloudy_1"


def test_split_holds_back_whole_scenes(sen12mscr_root):
    dataset = SEN12MSCRDataset(sen12mscr_root["root"])
    train, held, _ = split(dataset, 0.5, seed=0)
    train_scenes = {u.group for u in train.holdout_units()}
    held_scenes = {u.group for u in held.holdout_units()}
    assert len(held) == 3 and len(train) == 3
    assert train_scenes.isdisjoint(held_scenes) and len(held_scenes) == 1


def test_simulated_cloud_removal_pairs_from_bigearthnet(bigearthnet_pairs):
    dataset = SimulatedCloudRemovalDataset(bigearthnet_pairs, seed=5, coverage_range=(0.3, 0.5))
    sample = dataset[2]
    again = dataset[2]
    np.testing.assert_array_equal(sample["inputs"]["s2"], again["inputs"]["s2"])
    np.testing.assert_array_equal(sample["target"], bigearthnet_pairs[2]["inputs"]["s2"])
    np.testing.assert_array_equal(sample["inputs"]["sar"], bigearthnet_pairs[2]["inputs"]["sar"])
    assert 0.28 < sample["cloud_mask"].mean() < 0.52
    assert sample["patch"] == bigearthnet_pairs[2]["patch"]
    assert not np.array_equal(dataset[3]["cloud_mask"], sample["cloud_mask"])
