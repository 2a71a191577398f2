"""A small random forest on raw band values: the pixel classifier QGIS users already have.

The Semi-Automatic Classification Plugin and dzetsaka classify pixels by their band values with a
random forest; the embedding tools must beat that from the same few labelled points. Written here
(Breiman's forest of Gini CART trees, bootstrap samples, a random subset of the features at each
split) because the project has no scikit-learn dependency and needs no other part of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np


def gini(counts: np.ndarray) -> np.ndarray:
    """Gini impurity ``1 - sum(p^2)`` of class counts along the last axis (0 for an empty node)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = counts / total[..., None]
    return np.where(total > 0, 1.0 - np.sum(share**2, axis=-1), 0.0)


@dataclass
class Tree:
    """One CART tree as flat arrays; ``feature == -1`` marks a leaf."""

    feature: List[int] = field(default_factory=list)
    threshold: List[float] = field(default_factory=list)
    left: List[int] = field(default_factory=list)
    right: List[int] = field(default_factory=list)
    value: List[np.ndarray] = field(default_factory=list)
    depth: int = 0

    def _add(self, counts: np.ndarray) -> int:
        self.feature.append(-1)
        self.threshold.append(0.0)
        self.left.append(-1)
        self.right.append(-1)
        self.value.append(counts / max(counts.sum(), 1.0))
        return len(self.feature) - 1

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        feature = np.asarray(self.feature)
        threshold = np.asarray(self.threshold)
        left, right = np.asarray(self.left), np.asarray(self.right)
        node = np.zeros(len(x), dtype=np.int64)
        rows = np.arange(len(x))
        for _ in range(self.depth + 1):
            f = feature[node]
            inner = f >= 0
            if not inner.any():
                break
            goes_left = x[rows, np.maximum(f, 0)] <= threshold[node]
            node = np.where(inner, np.where(goes_left, left[node], right[node]), node)
        return np.stack(self.value)[node]


def best_split(x: np.ndarray, y: np.ndarray, n_classes: int, features: np.ndarray):
    """``(gain, feature, threshold)`` of the split of one node that lowers Gini impurity most
    (thresholds halfway between consecutive distinct values); gain 0 when no split helps."""
    parent = np.bincount(y, minlength=n_classes).astype(np.float64)
    best = (0.0, -1, 0.0)
    n = len(y)
    for f in features:
        order = np.argsort(x[:, f], kind="mergesort")
        values = x[order, f]
        onehot = np.eye(n_classes)[y[order]]
        left = np.cumsum(onehot, axis=0)[:-1]
        right = parent - left
        sizes = np.arange(1, n)
        impurity = (sizes * gini(left) + (n - sizes) * gini(right)) / n
        distinct = values[1:] > values[:-1]
        if not distinct.any():
            continue
        impurity = np.where(distinct, impurity, np.inf)
        i = int(np.argmin(impurity))
        gain = float(gini(parent)) - float(impurity[i])
        if gain > best[0]:
            best = (gain, int(f), float((values[i] + values[i + 1]) / 2.0))
    return best


class RandomForest:
    """Random forest classifier (class indices 0..n_classes-1).

    Args:
        n_trees: Trees in the forest.
        max_depth: Depth limit of each tree.
        min_samples_leaf: Smallest node that is still split is twice this.
        seed: Random seed of the bootstrap samples and feature subsets.
    """

    def __init__(
        self, n_trees: int = 100, max_depth: int = 12, min_samples_leaf: int = 1, seed: int = 0
    ):
        self.n_trees = n_trees
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.seed = seed
        self.trees: List[Tree] = []
        self.n_classes = 0

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: Optional[int] = None) -> RandomForest:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        self.n_classes = int(n_classes or y.max() + 1)
        rng = np.random.default_rng(self.seed)
        n_features = max(1, round(float(np.sqrt(x.shape[1]))))
        self.trees = []
        for _ in range(self.n_trees):
            rows = rng.integers(0, len(y), size=len(y))
            self.trees.append(self._grow(x[rows], y[rows], rng, n_features))
        return self

    def _grow(self, x: np.ndarray, y: np.ndarray, rng, n_features: int) -> Tree:
        tree = Tree()
        stack = [(np.arange(len(y)), tree._add(np.bincount(y, minlength=self.n_classes)), 0)]
        while stack:
            rows, node, depth = stack.pop()
            tree.depth = max(tree.depth, depth)
            labels = y[rows]
            if depth >= self.max_depth or len(rows) < 2 * self.min_samples_leaf:
                continue
            if np.all(labels == labels[0]):
                continue
            features = rng.choice(x.shape[1], size=n_features, replace=False)
            gain, feature, threshold = best_split(x[rows], labels, self.n_classes, features)
            if feature < 0 or gain <= 0:
                continue
            goes_left = x[rows, feature] <= threshold
            if (
                goes_left.sum() < self.min_samples_leaf
                or (~goes_left).sum() < self.min_samples_leaf
            ):
                continue
            tree.feature[node], tree.threshold[node] = feature, threshold
            for side, part in (("left", rows[goes_left]), ("right", rows[~goes_left])):
                child = tree._add(np.bincount(y[part], minlength=self.n_classes).astype(np.float64))
                getattr(tree, side)[node] = child
                stack.append((part, child, depth + 1))
        return tree

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.mean([tree.predict_proba(x) for tree in self.trees], axis=0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(x), axis=1)
