"""Pan-sharpening pairs (solaris SpaceNet-6 pan + MS samples), full and reduced resolution."""

from __future__ import annotations

import numpy as np
import pytest

from backend.data.tasks.resampling import (
    decimate,
    gaussian_kernel,
    mtf_sigma,
    upsample_bicubic,
    wald_degrade,
)
from backend.data.tasks.spacenet import (
    PanSharpeningDataset,
    find_pan_ms_pairs,
    pixel_replication,
)
from backend.data.tasks.split import split


@pytest.fixture(scope="module")
def pan_ms_folder(sample_data):
    return sample_data / "pan_ms"


@pytest.fixture(scope="module")
def raw_pair(pan_ms_folder):
    import rasterio

    with (
        rasterio.open(pan_ms_folder / "pan1.tif") as pan,
        rasterio.open(pan_ms_folder / "ms1.tif") as ms,
    ):
        return pan.read().astype(np.float32), ms.read().astype(np.float32)


def test_pairs_are_matched_by_name(pan_ms_folder):
    pairs = find_pan_ms_pairs(pan_ms_folder)
    assert [(p.name, m.name) for p, m in pairs] == [
        ("pan1.tif", "ms1.tif"),
        ("pan2.tif", "ms2.tif"),
        ("pan3.tif", "ms3.tif"),
    ]


def test_sample_ms_is_2x2_replicated_so_the_ratio_is_4(raw_pair, pan_ms_folder):
    pan, ms = raw_pair
    assert pan.shape == (1, 600, 600) and ms.shape == (4, 300, 300)
    assert pixel_replication(ms, (ms > 0).all(axis=0)) == 2
    # A truly 2 m image is not replicated.
    assert pixel_replication(ms[:, ::2, ::2], np.ones((150, 150), bool)) == 1
    dataset = PanSharpeningDataset.from_folder(pan_ms_folder, mode="full", tile_size=120)
    assert dataset.ratios == [4, 4, 4]


def test_mtf_gaussian_has_the_requested_gain_at_the_degraded_nyquist():
    for ratio, gain in ((4, 0.3), (4, 0.15), (2, 0.3)):
        kernel = gaussian_kernel(mtf_sigma(ratio, gain))
        taps = np.arange(len(kernel)) - len(kernel) // 2
        response = float((kernel * np.cos(2 * np.pi * taps / (2 * ratio))).sum())
        assert abs(response - gain) < 0.01


def test_wald_degradation_shape_and_alignment(raw_pair):
    pan, ms = raw_pair
    assert wald_degrade(pan, 4, 0.15).shape == (1, 150, 150)
    assert wald_degrade(ms[:, ::2, ::2], 4, 0.3).shape == (4, 37, 37)
    # Decimating then upsampling a linear ramp gives the ramp back: no half-pixel shift.
    ramp = np.tile(np.arange(64, dtype=np.float32), (1, 64, 1))
    restored = upsample_bicubic(decimate(ramp, 4), 4)
    np.testing.assert_allclose(restored[0, 8:-8, 8:-8], ramp[0, 8:-8, 8:-8], atol=1e-3)
    constant = np.full((2, 5, 7), 3.0, np.float32)
    np.testing.assert_allclose(upsample_bicubic(constant, 4), 3.0, atol=1e-5)


def test_reduced_resolution_samples(pan_ms_folder, raw_pair):
    dataset = PanSharpeningDataset.from_folder(pan_ms_folder, mode="reduced", tile_size=48)
    pan, ms = raw_pair
    first = [i for i, t in enumerate(dataset.tiles) if t[0] == 0]
    # The 148 x 148 reduced grid of pair 1 (no nodata): tiles at 0, 48, 96 and 100 per axis.
    assert len(first) == 16
    _, row, col = dataset.tiles[first[4]]
    sample = dataset[first[4]]
    assert sample["inputs"]["pan"].shape == (1, 48, 48)
    assert sample["inputs"]["ms"].shape == sample["target"].shape == (4, 48, 48)
    true_ms = ms[:, ::2, ::2]
    np.testing.assert_array_equal(sample["target"], true_ms[:, row : row + 48, col : col + 48])
    pan_low = wald_degrade(pan[:, :592, :592], 4, 0.15)
    np.testing.assert_allclose(
        sample["inputs"]["pan"], pan_low[:, row : row + 48, col : col + 48], rtol=1e-5
    )
    # The upsampled degraded MS resembles the reference but has lost detail.
    target, low = sample["target"], sample["inputs"]["ms"]
    assert np.corrcoef(target.ravel(), low.ravel())[0, 1] > 0.6
    assert np.abs(np.diff(low, axis=2)).mean() < 0.7 * np.abs(np.diff(target, axis=2)).mean()
    assert sample["valid"].all()


def test_full_resolution_samples_have_no_target(pan_ms_folder, raw_pair):
    dataset = PanSharpeningDataset.from_folder(pan_ms_folder, mode="full", tile_size=128)
    pan, ms = raw_pair
    index = next(i for i, t in enumerate(dataset.tiles) if t[0] == 0)
    _, row, col = dataset.tiles[index]
    sample = dataset[index]
    assert "target" not in sample
    np.testing.assert_array_equal(sample["inputs"]["pan"], pan[:, row : row + 128, col : col + 128])
    up = sample["inputs"]["ms"]
    assert up.shape == (4, 128, 128)
    # Each 4 x 4 block of the upsampled MS averages close to its 2 m MS pixel.
    blocks = up.reshape(4, 32, 4, 32, 4).mean(axis=(2, 4))
    true_ms = ms[:, ::2, ::2][:, row // 4 : row // 4 + 32, col // 4 : col // 4 + 32]
    assert np.median(np.abs(blocks - true_ms) / true_ms) < 0.1


def test_nodata_tiles_are_left_out_and_split_holds_back_whole_pairs(pan_ms_folder):
    dataset = PanSharpeningDataset.from_folder(pan_ms_folder, mode="reduced", tile_size=48)
    per_pair = [sum(t[0] == p for t in dataset.tiles) for p in range(3)]
    assert per_pair[0] == 16 and per_pair[1] < 16 and per_pair[2] < 16  # 2, 3 have 0 borders
    for index in range(len(dataset)):
        assert dataset[index]["inputs"]["pan"].min() > 0
    train, held, _ = split(dataset, 0.34, seed=0)
    assert {u.group for u in train.holdout_units()}.isdisjoint(
        u.group for u in held.holdout_units()
    )


def test_random_tiles_are_seeded(pan_ms_folder):
    first = PanSharpeningDataset.from_folder(pan_ms_folder, tile_size=32, random_tiles=5, seed=1)
    again = PanSharpeningDataset.from_folder(pan_ms_folder, tile_size=32, random_tiles=5, seed=1)
    assert first.tiles == again.tiles and len(first) > 0


def test_ms_input_normalises_with_given_statistics(pan_ms_folder):
    from backend.data.tasks.normalization import normalize_sample

    sample = PanSharpeningDataset.from_folder(pan_ms_folder, mode="full", tile_size=64)[0]
    from backend.data.tasks.normalization import REGISTRY_STATISTICS
    from backend.sensors import get_sensor

    pan_entry = get_sensor("pan")
    stats = {
        "ms": {"mean": [100.0, 150.0, 160.0, 300.0], "std": [50.0, 60.0, 70.0, 150.0]},
        "pan": {"mean": list(pan_entry.mean), "std": list(pan_entry.std)},
    }
    normalized = normalize_sample(sample, stats)["inputs"]
    np.testing.assert_allclose(
        normalized["ms"][3], (sample["inputs"]["ms"][3] - 300.0) / 150.0, rtol=1e-5
    )
    np.testing.assert_allclose(normalized["pan"][0], (sample["inputs"]["pan"][0] - 200.0) / 117.0)
    # The registry's statistics for the `ms` sensor, asked for on purpose.
    ms = get_sensor("ms")
    defaults = normalize_sample(sample, REGISTRY_STATISTICS)["inputs"]["ms"]
    np.testing.assert_allclose(
        defaults[3], (sample["inputs"]["ms"][3] - ms.mean[3]) / ms.std[3], rtol=1e-5, atol=1e-6
    )
