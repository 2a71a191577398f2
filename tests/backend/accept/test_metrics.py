"""The acceptance figures on small arrays whose values are worked out by hand."""

import math

import numpy as np
import pytest

from backend.accept.metrics import (
    accuracy_and_macro_f1,
    adjusted_rand_index,
    band_mean_change,
    bootstrap_interval,
    brovey,
    clipped_fraction,
    match_pan,
    ndwi,
    roc_auc,
    upsample_bicubic,
    zero_fraction_per_band,
)


def test_clipped_fraction_counts_both_ends():
    image = np.array([[[0.0, 5.0], [10.0, 3.0]]])
    assert clipped_fraction(image, 0.0, 10.0) == 0.5


def test_zero_fraction_per_band():
    image = np.array([[[0, 1], [0, 0]], [[2, 2], [2, 0]]], dtype=np.float32)
    assert zero_fraction_per_band(image).tolist() == [0.75, 0.25]


def test_band_mean_change_is_relative():
    pred = np.array([[[1.0, 3.0]], [[3.0, 3.0]]])
    ref = np.array([[[2.0, 2.0]], [[2.0, 2.0]]])
    assert band_mean_change(pred, ref).tolist() == [0.0, 0.5]
    with pytest.raises(ValueError):
        band_mean_change(pred, np.zeros_like(ref))


def test_ndwi_hand_values_and_empty_pixel():
    out = ndwi(np.array([3.0, 1.0, 0.0]), np.array([1.0, 3.0, 0.0]))
    assert out[:2].tolist() == [0.5, -0.5] and math.isnan(out[2])


def test_accuracy_and_macro_f1_hand_example():
    accuracy, f1 = accuracy_and_macro_f1(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 3)
    # class 0: 1 hit, 2 predicted, 1 true -> 2/3; class 1: 2 hits, 2 predicted, 3 true -> 4/5
    assert accuracy == 0.75
    assert f1 == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_adjusted_rand_index_hand_example():
    # pairs together in both: 1; rows 2, columns 1, of 6 pairs: expected 1/3, max 3/2 -> 4/7
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 7, 7]) == 1.0
    assert adjusted_rand_index([0, 1, 0, 1], [0, 0, 1, 1]) == pytest.approx(-0.5)


def test_roc_auc_rank_sum_with_ties():
    labels = np.array([1, 1, 0, 0], dtype=bool)
    assert roc_auc(labels, np.array([0.9, 0.4, 0.5, 0.1])) == 0.75
    assert roc_auc(np.array([1, 0], dtype=bool), np.array([0.5, 0.5])) == 0.5
    assert math.isnan(roc_auc(np.array([1, 1], dtype=bool), np.array([0.1, 0.2])))


def test_bootstrap_interval_of_groups():
    same = [np.array([2.0, 2.0]), np.array([2.0])]
    assert bootstrap_interval(same, np.mean) == (2.0, 2.0)
    groups = [np.full(10, float(i)) for i in range(20)]
    low, high = bootstrap_interval(groups, np.mean, n_resamples=500)
    assert low < 9.5 < high and high - low < 6.0


def test_brovey_scales_each_band_by_pan_over_intensity():
    ms = np.array([[[2.0]], [[6.0]]])
    assert brovey(ms, np.array([[8.0]])).ravel().tolist() == [4.0, 12.0]
    # zero intensity keeps the MS as it is
    assert brovey(np.zeros((2, 1, 1)), np.array([[5.0]])).ravel().tolist() == [0.0, 0.0]


def test_match_pan_takes_the_intensity_mean_and_spread():
    matched = match_pan(np.array([0.0, 2.0]), np.array([10.0, 14.0]))
    assert matched.tolist() == [10.0, 14.0]


def test_bicubic_upsampling_keeps_a_constant_and_the_shape():
    out = upsample_bicubic(np.full((2, 3, 3), 7.0), (6, 6))
    assert out.shape == (2, 6, 6) and np.allclose(out, 7.0)


def test_bicubic_upsampling_keeps_pixel_areas_aligned():
    # A ramp sampled at coarse pixel centres (1.5, 5.5, ...) of a ratio-4 grid comes back as the
    # ramp at the fine pixel centres, unshifted and unstretched, away from the edges (clamped
    # there). Corner-aligned zooming would be 0.5 off there.
    fine = np.arange(32, dtype=np.float64)
    coarse = fine.reshape(8, 4).mean(axis=1)
    image = np.broadcast_to(coarse, (8, 8))[None]
    out = upsample_bicubic(image, (32, 32))[0]
    np.testing.assert_allclose(out[16, 10:22], fine[10:22], atol=0.05)
