"""Seeded mini-batch k-means."""

from __future__ import annotations

import numpy as np
import pytest

from backend.embedtools.kmeans import minibatch_kmeans, nearest_centre, order_by_size


def test_finds_separated_clusters_and_is_reproducible():
    rng = np.random.default_rng(0)
    truth = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    sizes = [3000, 2000, 1000]
    samples = np.vstack([rng.normal(c, 1.0, size=(n, 2)) for c, n in zip(truth, sizes)])
    centres = order_by_size(samples, minibatch_kmeans(samples, 3, seed=4))
    np.testing.assert_allclose(centres, truth, atol=0.3)  # largest first
    again = order_by_size(samples, minibatch_kmeans(samples, 3, seed=4))
    np.testing.assert_array_equal(centres, again)
    labels = nearest_centre(samples.astype(np.float32), centres)
    assert np.bincount(labels).tolist() == pytest.approx(sizes, abs=30)


def test_too_few_samples():
    with pytest.raises(ValueError, match="cannot make 5 clusters"):
        minibatch_kmeans(np.zeros((3, 2)), 5)
