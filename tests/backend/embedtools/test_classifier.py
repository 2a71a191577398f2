"""The numpy classifiers: logistic regression, k-NN, class balance, grouped cross-validation."""

from __future__ import annotations

import numpy as np
import pytest

from backend.embedtools.classifier import (
    ClassifierError,
    LogisticRegression,
    NearestNeighbours,
    Standardizer,
    balanced_weights,
    fit_classifier,
    group_folds,
)


def blobs(counts, separation=3.0, dims=8, seed=0):
    """Gaussian blobs, one per class, ``separation`` standard deviations apart on axis k."""
    rng = np.random.default_rng(seed)
    features, labels = [], []
    for k, count in enumerate(counts):
        centre = np.zeros(dims)
        centre[k % dims] = separation
        features.append(rng.normal(centre, 1.0, size=(count, dims)))
        labels.append(np.full(count, k))
    return np.vstack(features).astype(np.float32), np.concatenate(labels)


def test_logistic_regression_separates_three_classes():
    x, y = blobs([200, 200, 200], separation=4.0)
    test_x, test_y = blobs([200, 200, 200], separation=4.0, seed=1)
    model = LogisticRegression(l2=1e-3).fit(x, y, 3)
    probabilities = model.predict_proba(test_x)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(probabilities.argmax(axis=1) == test_y) > 0.95


def test_logistic_regression_reaches_the_optimum():
    """At the fitted weights the penalised loss's gradient is ~0 (checked by finite differences)."""
    x, y = blobs([60, 40], separation=1.5, dims=3)
    model = LogisticRegression(l2=0.1, iterations=2000).fit(x, y, 2)
    weights = balanced_weights(y, 2) / len(y)

    def loss(w, b):
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return -(weights * log_p[np.arange(len(y)), y]).sum() + 0.05 * (w**2).sum()

    w, b = model.weights.astype(np.float64), model.bias.astype(np.float64)
    base = loss(w, b)
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            step = np.zeros_like(w)
            step[i, j] = 1e-3
            assert loss(w + step, b) >= base - 1e-6
            assert loss(w - step, b) >= base - 1e-6


def test_class_balance_keeps_a_rare_class():
    """With 20 examples against 1000, the rare class is still found where it is."""
    x, y = blobs([1000, 20], separation=2.0)
    test_x, test_y = blobs([500, 500], separation=2.0, seed=3)
    for model in (LogisticRegression(l2=1e-2).fit(x, y, 2), NearestNeighbours(k=15).fit(x, y, 2)):
        predicted = model.predict_proba(test_x).argmax(axis=1)
        assert np.mean(predicted[test_y == 1] == 1) > 0.7, type(model).__name__
    weights = balanced_weights(y, 2)
    assert weights[y == 0].sum() == pytest.approx(weights[y == 1].sum())


def test_group_folds_keep_examples_whole_and_spread_classes():
    labels = np.repeat([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], 7)
    groups = np.repeat(np.arange(10), 7)
    folds = group_folds(labels, groups, 5, seed=0)
    for group in range(10):
        assert len(set(folds[groups == group])) == 1
    for fold in range(5):
        assert set(labels[folds == fold]) == {0, 1}


def test_fit_classifier_cross_validates_over_examples():
    """Pixels of one example are near copies: a held-out example is a new place."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 6)) * 3
    labels = np.repeat(np.arange(20) % 2, 30)
    centres[::2, 0] += 2.0  # class 0 examples sit a little to one side
    features = np.repeat(centres, 30, axis=0) + rng.normal(scale=0.05, size=(600, 6))
    groups = np.repeat(np.arange(20), 30)
    fitted = fit_classifier(features.astype(np.float32), labels, groups, 2, method="knn")
    # k-NN over pixels would score ~1.0 (each pixel's neighbours are its own example's pixels);
    # over held-out examples it is far lower.
    assert fitted.chosen.accuracy < 0.9
    assert {s.candidate.method for s in fitted.scores} == {"knn"}
    auto = fit_classifier(features.astype(np.float32), labels, groups, 2)
    assert {s.candidate.method for s in auto.scores} == {"logistic", "knn", "forest"}
    assert auto.chosen.balanced_accuracy == max(s.balanced_accuracy for s in auto.scores)


def test_one_class_is_refused():
    x, y = blobs([30])
    with pytest.raises(ClassifierError, match="only one class"):
        fit_classifier(x, y, np.arange(30), 2)


def test_standardizer_leaves_constant_features_centred():
    x = np.array([[1.0, 5.0], [3.0, 5.0]], dtype=np.float32)
    standardize = Standardizer.fit(x)
    np.testing.assert_allclose(standardize(x), [[-1.0, 0.0], [1.0, 0.0]])
