"""BigEarthNet adapter on the 6 real example patches (published S1/S2 layout)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.data.tasks.bigearthnet import (
    BIGEARTHNET19_CLASSES,
    CORINE_TO_BIGEARTHNET19,
    BigEarthNetDataset,
    bigearthnet19_indices,
)
from backend.data.tasks.normalization import REGISTRY_STATISTICS, normalize_sample
from backend.data.tasks.split import split
from backend.sensors import get_sensor

# Labels of this patch (its *_labels_metadata.json): Coniferous forest, Mixed forest, Transitional
# woodland/shrub, Peatbogs, Water bodies -> 19-class indexes 9, 10, 13, 15 (inland wetlands) and
# 17 (inland waters), checked by hand against the nomenclature.
FOREST_PATCH = "S2B_MSIL2A_20170924T93020_69_24"
FOREST_CLASSES = [9, 10, 13, 15, 17]


def test_nomenclature_maps_the_43_corine_names_onto_all_19_classes():
    assert len(CORINE_TO_BIGEARTHNET19) == 43
    assert len(BIGEARTHNET19_CLASSES) == 19
    targets = {v for v in CORINE_TO_BIGEARTHNET19.values() if v is not None}
    assert targets == set(BIGEARTHNET19_CLASSES)
    dropped = [k for k, v in CORINE_TO_BIGEARTHNET19.items() if v is None]
    assert len(dropped) == 11 and "Airports" in dropped and "Burnt areas" in dropped


def test_label_mapping_merges_drops_and_rejects_unknown_names():
    assert bigearthnet19_indices(["Salt marshes", "Salines"]) == [16]
    assert bigearthnet19_indices(["Airports", "Pastures"]) == [4]
    assert bigearthnet19_indices(["Port areas"]) == []
    with pytest.raises(ValueError, match="unknown label 'Forest'"):
        bigearthnet19_indices(["Forest"], "P1")


def test_paired_patches_read_onto_the_10m_grid(bigearthnet_pairs, bigearthnet_root):
    import rasterio

    assert len(bigearthnet_pairs) == 6
    index = [p[0] for p in bigearthnet_pairs.patches].index(FOREST_PATCH)
    sample = bigearthnet_pairs[index]
    s2, sar = sample["inputs"]["s2"], sample["inputs"]["sar"]
    assert s2.shape == (12, 120, 120) and s2.dtype == np.float32
    assert sar.shape == (2, 120, 120) and sar.dtype == np.float32
    folder = bigearthnet_root / "S2" / FOREST_PATCH
    with rasterio.open(next(folder.glob("*_B04.tif"))) as band:
        np.testing.assert_array_equal(s2[3], band.read(1).astype(np.float32))
    with rasterio.open(next(folder.glob("*_B01.tif"))) as band:
        coarse = band.read(1).astype(np.float64)
    assert coarse.shape == (20, 20)
    # The 60 m band is interpolated, not blocky, and keeps the band's level.
    assert abs(s2[0].mean() / coarse.mean() - 1) < 0.02
    assert len(np.unique(s2[0][:6, :6])) > 1
    s1_folder = next(p for p in (bigearthnet_root / "S1").iterdir() if p.name.endswith("69_24"))
    with rasterio.open(next(s1_folder.glob("*_VV.tif"))) as band:
        np.testing.assert_allclose(sar[0], band.read(1), rtol=1e-6)
    assert -30 < float(np.nanmean(sar[1])) < -10  # VH in dB


def test_known_patch_labels_give_the_expected_19_class_vector(bigearthnet_pairs):
    index = [p[0] for p in bigearthnet_pairs.patches].index(FOREST_PATCH)
    expected = np.zeros(19, dtype=np.float32)
    expected[FOREST_CLASSES] = 1
    target = bigearthnet_pairs[index]["target"]
    assert target.dtype == np.float32
    np.testing.assert_array_equal(target, expected)


def test_single_label_mode_takes_the_first_mapped_label(bigearthnet_root):
    dataset = BigEarthNetDataset(bigearthnet_root / "S2", label_mode="single")
    assert dataset.sensors == ["s2"]
    by_name = {name: dataset.target(i) for i, (name, *_) in enumerate(dataset.patches)}
    assert int(by_name[FOREST_PATCH]) == 9  # Coniferous forest
    assert int(by_name["S2A_MSIL2A_20170613T101031_87_48"]) == 2  # Non-irrigated arable land
    assert by_name[FOREST_PATCH].dtype == np.int64
    assert "sar" not in dataset[0]["inputs"]


def test_split_holds_back_whole_patches(bigearthnet_pairs):
    train, held, _ = split(bigearthnet_pairs, 0.34, seed=3)
    assert set(train.indices).isdisjoint(held.indices)
    assert sorted(train.indices + held.indices) == list(range(6))
    assert len(held) == 2  # 0.34 * 6 = 2.04 patches: the nearest whole number of patches
    assert {u.group for u in held.holdout_units()}.isdisjoint(
        u.group for u in train.holdout_units()
    )


def test_normalize_sample_applies_band_statistics_and_zeroes_nodata(bigearthnet_pairs):
    sample = bigearthnet_pairs[0]
    raw = sample["inputs"]["s2"].copy()
    raw[:, 0, 0] = np.nan
    sample["inputs"]["s2"] = raw
    s2 = get_sensor("s2")
    normalized = normalize_sample(sample, REGISTRY_STATISTICS)
    np.testing.assert_allclose(
        normalized["inputs"]["s2"][7, 5, 9], (raw[7, 5, 9] - s2.mean[7]) / s2.std[7], rtol=1e-5
    )
    assert (normalized["inputs"]["s2"][:, 0, 0] == 0).all()
    s2_stats = {"mean": list(s2.mean), "std": list(s2.std)}
    stats = {"sar": {"mean": [-10.0, -20.0], "std": [2.0, 4.0]}, "s2": s2_stats}
    sar = normalize_sample(sample, stats)["inputs"]["sar"]
    np.testing.assert_allclose(sar[1], (sample["inputs"]["sar"][1] + 20.0) / 4.0, rtol=1e-5)
    assert normalized["target"] is sample["target"]
    # Statistics that lack an input's sensor are refused, never filled in from the registry
    # (how the Sentinel-1 probe was once scored through a patch embedding never pretrained).
    with pytest.raises(ValueError, match="no entry for sensor 's2'"):
        normalize_sample(sample, {"sar": stats["sar"]})
    with pytest.raises(ValueError, match="REGISTRY_STATISTICS"):
        normalize_sample(sample, None)


def test_unpaired_s2_patches_are_kept_with_no_data_sar_and_excluded_ones_left_out(sample_data):
    root = sample_data
    s2_roots = [root / "bigearthnet" / "S2", root / "bigearthnet_extra" / "S2"]
    paired = BigEarthNetDataset(s2_roots, root / "bigearthnet" / "S1")
    assert len(paired) == 6  # the extra S2 patches have no S1 partner
    excluded = ["S2A_MSIL2A_20170613T101031_87_48", "S2B_MSIL2A_20170914T093029_32_39"]
    dataset = BigEarthNetDataset(
        s2_roots, root / "bigearthnet" / "S1", keep_unpaired=True, exclude=excluded
    )
    names = [p[0] for p in dataset.patches]
    assert len(dataset) == 14 - 2 and not set(excluded) & set(names)
    for index, (name, _, s1_folder, _) in enumerate(dataset.patches):
        if name in ("S2B_MSIL2A_20180421T114349_47_56", FOREST_PATCH):
            sar = dataset[index]["inputs"]["sar"]
            assert sar.shape == (2, 120, 120)
            assert np.isnan(sar).all() == (s1_folder is None)
    with pytest.raises(ValueError, match="not there"):
        BigEarthNetDataset(s2_roots, root / "bigearthnet" / "S1", exclude=["nope"])
