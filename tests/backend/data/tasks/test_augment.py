"""Training augmentations: labels stay on their pixels, jitter keeps no data, fresh clouds cover
the clear target (or leave it clear), class-balanced weights draw classes about equally."""

from __future__ import annotations

import numpy as np
import pytest

from backend.conventions import IGNORE_INDEX
from backend.data.tasks.augment import (
    JitterSettings,
    class_balanced_weights,
    class_loss_weights,
    dihedral,
    fresh_clouds,
    jitter_inputs,
    radiometric_jitter,
)
from backend.data.tasks.clouds import S2_CLOUD_REFLECTANCE
from backend.sensors import get_sensor
from backend.train.finetune import TrainingSamples


def _labelled_sample(size: int = 8) -> dict:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (size, size))
    image = np.stack([labels.astype(np.float32), rng.random((size, size), dtype=np.float32)])
    return {"inputs": {"landsat": image}, "target": labels, "valid": labels > 1, "row": 3}


@pytest.mark.parametrize("rotations", [0, 1, 2, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_dihedral_keeps_labels_on_their_pixels(rotations, flip):
    sample = _labelled_sample()
    out = dihedral(sample, rotations, flip)
    # Band 0 of the image is the label raster itself: after any turn they must still agree.
    assert np.array_equal(out["inputs"]["landsat"][0], out["target"].astype(np.float32))
    assert np.array_equal(out["valid"], out["target"] > 1)
    assert out["row"] == 3
    if rotations or flip:
        assert not np.array_equal(out["target"], sample["target"])


def test_training_stream_rotations_keep_labels_aligned():
    samples = [_labelled_sample() for _ in range(3)]
    stream = TrainingSamples(samples, lambda s: dict(s), seed=4, rotate=True)
    turned = 0
    for index in range(24):
        drawn = stream[index]
        assert np.array_equal(drawn["inputs"]["landsat"][0], drawn["target"].astype(np.float32))
        turned += not np.array_equal(drawn["target"], samples[0]["target"])
    assert turned > 12


def test_radiometric_jitter_stays_within_its_settings_and_keeps_no_data():
    rng = np.random.default_rng(1)
    image = np.full((4, 6, 6), 1000.0, dtype=np.float32)
    image[:, 0, 0] = np.nan
    settings = JitterSettings(gain=0.1, band_gain=0.02, offset=0.03)
    for _ in range(50):
        out = radiometric_jitter(image, rng, settings)
        assert np.isnan(out[:, 0, 0]).all()
        values = out[:, 1:, 1:]
        # Each band is one affine change of a constant band: still constant, within bounds.
        assert np.allclose(values, values[:, :1, :1], rtol=1e-6)
        low, high = 1000 * 0.9 * 0.98 - 30, 1000 * 1.1 * 1.02 + 30
        assert (values >= low - 1e-3).all() and (values <= high + 1e-3).all()
    sar = np.zeros((2, 3, 3), dtype=np.float32)
    shifted = radiometric_jitter(sar, rng, settings, decibels=True)
    assert np.abs(shifted).max() <= 1.1 * settings.sar_offset_db + 1e-6


def test_jitter_inputs_changes_inputs_not_labels():
    sample = _labelled_sample()
    out = jitter_inputs(sample, np.random.default_rng(2))
    assert out["target"] is sample["target"]
    assert not np.array_equal(out["inputs"]["landsat"], sample["inputs"]["landsat"])


def _clear_s2(size: int = 64) -> dict:
    rng = np.random.default_rng(3)
    clear = (500 + 1000 * rng.random((12, size, size))).astype(np.float32)
    sar = rng.normal(-12, 2, (2, size, size)).astype(np.float32)
    return {"inputs": {"s2": clear.copy(), "sar": sar}, "target": clear, "patch": "p"}


def test_fresh_clouds_cover_the_clear_target_or_leave_it_clear():
    bands = get_sensor("s2").bands
    sample = _clear_s2()
    clear = fresh_clouds(sample, np.random.default_rng(0), bands, clear_probability=1.0)
    assert np.array_equal(clear["inputs"]["s2"], clear["target"])
    assert not clear["opacity"].any() and not clear["cloud_mask"].any()

    brighter = 0
    for seed in range(8):
        cloudy = fresh_clouds(sample, np.random.default_rng(seed), bands, clear_probability=0.0)
        assert np.array_equal(cloudy["target"], sample["target"])  # no jitter asked for
        opacity = cloudy["opacity"]
        assert opacity.shape == (64, 64) and opacity.max() > 0.1
        covered = opacity > 0.5
        if covered.any():
            brighter += int(
                cloudy["inputs"]["s2"][:, covered].mean() > sample["target"][:, covered].mean()
            )
    assert brighter >= 6


def test_fresh_clouds_with_jitter_changes_target_and_sar_together_with_input():
    bands = get_sensor("s2").bands
    sample = _clear_s2()
    out = fresh_clouds(
        sample, np.random.default_rng(5), bands, clear_probability=1.0, jitter=JitterSettings()
    )
    assert not np.array_equal(out["target"], sample["target"])
    assert np.array_equal(out["inputs"]["s2"], out["target"])  # clear: input is the target
    assert not np.array_equal(out["inputs"]["sar"], sample["inputs"]["sar"])


def test_class_balanced_sampling_draws_classes_about_equally():
    targets = [np.array(0)] * 80 + [np.array(1)] * 15 + [np.array(2)] * 5
    weights = class_balanced_weights(targets, 3)
    assert weights.sum() == pytest.approx(1.0)
    stream = TrainingSamples(targets, lambda t: {"target": t}, seed=0, flips=False, weights=weights)
    drawn = np.array([int(stream[i]["target"]) for i in range(3000)])
    frequencies = np.bincount(drawn, minlength=3) / drawn.size
    assert np.allclose(frequencies, 1 / 3, atol=0.05)
    uniform = TrainingSamples(targets, lambda t: {"target": t}, seed=0, flips=False)
    plain = np.array([int(uniform[i]["target"]) for i in range(300)])
    assert np.bincount(plain, minlength=3)[0] == 240  # each epoch is a permutation


def test_class_balanced_weights_favour_tiles_with_rare_classes():
    common = np.zeros((4, 4), dtype=np.int64)
    rare = common.copy()
    rare[0, :2] = 3
    unlabelled = np.full((4, 4), IGNORE_INDEX, dtype=np.int64)
    weights = class_balanced_weights([common, common, rare, unlabelled], 4)
    assert weights[2] > 3 * weights[0]
    assert weights[3] > 0


def test_class_loss_weights_are_inverse_square_root_frequencies():
    labels = np.array([0] * 90 + [1] * 10 + [IGNORE_INDEX] * 5)
    weights = class_loss_weights([labels], 3, power=0.5)
    assert weights[2] == 1.0  # absent class
    assert weights[1] / weights[0] == pytest.approx(3.0)
    assert weights[:2].mean() == pytest.approx(1.0)


def _real_clear_s2(bigearthnet_pairs) -> dict:
    sample = bigearthnet_pairs[0]
    clear = np.asarray(sample["inputs"]["s2"], dtype=np.float32)
    return {"inputs": {**sample["inputs"], "s2": clear.copy()}, "target": clear, "patch": "p"}


def test_scene_haze_veils_target_and_input_alike_and_is_not_cloud(bigearthnet_pairs):
    bands = get_sensor("s2").bands
    sample = _real_clear_s2(bigearthnet_pairs)
    original = sample["target"]
    hazy = 0
    for seed in range(12):
        clear = fresh_clouds(
            sample, np.random.default_rng(seed), bands, clear_probability=1.0, scene_haze=0.1
        )
        # A clear sample stays clear: the veil is on its target too, and its opacity is zero.
        assert np.array_equal(clear["inputs"]["s2"], clear["target"])
        assert not clear["opacity"].any()
        if not np.array_equal(clear["target"], original):
            hazy += 1
            cloud = np.array([S2_CLOUD_REFLECTANCE[b] for b in bands])[:, None, None]
            moved = clear["target"] - original
            # A veil of at most 0.1 pulls every value towards the cloud's, by at most a tenth of
            # the way; relatively, the dark aerosol band B01 changes the most.
            assert np.all(moved * (cloud - original) >= -1e-3)
            assert np.all(np.abs(moved) <= 0.1 * np.abs(cloud - original) + 1e-2)
            change = clear["target"] / original - 1.0
            assert change[0].mean() > change[7].mean()
    assert 3 <= hazy <= 9  # half of the samples

    for seed in range(6):
        cloudy = fresh_clouds(
            sample, np.random.default_rng(seed), bands, clear_probability=0.0, scene_haze=0.1
        )
        opacity = cloudy["opacity"]
        free = opacity == 0
        # Where there is no cloud the clouds carry no haze: the input is the (hazy) target.
        assert free.any()
        assert np.array_equal(cloudy["inputs"]["s2"][:, free], cloudy["target"][:, free])


def test_add_haze_keeps_no_data_and_refuses_a_bad_strength(bigearthnet_pairs):
    from backend.data.tasks.clouds import add_haze

    bands = get_sensor("s2").bands
    image = np.asarray(bigearthnet_pairs[0]["inputs"]["s2"], dtype=np.float32).copy()
    image[:, :4, :4] = np.nan
    out = add_haze(image, bands, np.random.default_rng(0), 0.05)
    assert np.isnan(out[:, :4, :4]).all() and np.isfinite(out[:, 4:, 4:]).all()
    assert np.array_equal(add_haze(image[:, 4:, 4:], bands, np.random.default_rng(0), 0.0),
                          image[:, 4:, 4:])  # fmt: skip
    with pytest.raises(ValueError, match="strength"):
        add_haze(image, bands, np.random.default_rng(0), 1.0)
