"""A random forest on pixel features, in numpy: the pixel classifier QGIS users already have.

The Semi-Automatic Classification Plugin and dzetsaka classify pixels by their band values with a
random forest; the Embeddings tools offer the same (on the pixel's bands, the encoder's features or
both) and the acceptance suite measures the encoder against it. Written here (Breiman's forest of
Gini CART trees on bootstrap samples, a random subset of the features at each split) because the
project has no scikit-learn dependency.

Trees are grown level by level: at each depth, one sort per tried feature slot finds the best split
of every node of that level at once (the nodes' samples are contiguous segments of the sorted
order), so the cost is a few numpy passes per level rather than per node. A tree is stored as flat
arrays; prediction walks all trees of the forest at once for a chunk of pixels, one gather per
level. Sample weights set how often a sample is drawn into each tree's bootstrap sample: with
class balancing a class with ten times the examples gets a tenth of the weight per example, as for
the other classifiers of :mod:`.classifier`, so every class fills the same share of every tree.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np


def gini(counts: np.ndarray) -> np.ndarray:
    """Gini impurity ``1 - sum(p^2)`` of (weighted) class counts along the last axis (0 if empty)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = counts / total[..., None]
    return np.where(total > 0, 1.0 - np.sum(share**2, axis=-1), 0.0)


@dataclass
class FlatTree:
    """One tree: ``feature[i] == -1`` marks a leaf; ``value`` is the class distribution of a node."""

    feature: np.ndarray  # (nodes,) int
    threshold: np.ndarray  # (nodes,) float32: x <= threshold goes left
    left: np.ndarray  # (nodes,) int: the left child; the right one is ``left + 1``
    value: np.ndarray  # (nodes, K) float32, rows sum to 1
    depth: int


def _midpoint(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Float32 thresholds between consecutive distinct float32 values (``low`` goes left)."""
    middle = (low.astype(np.float64) + high.astype(np.float64)) / 2.0
    middle = middle.astype(np.float32)
    # Adjacent float32 values have no float32 between them: the lower one is then the threshold.
    return np.where(middle >= high, low, middle).astype(np.float32)


def grow_tree(
    x: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    n_classes: int,
    max_depth: int,
    n_try: int,
    rng: np.random.Generator,
    min_samples_leaf: int = 1,
) -> FlatTree:
    """A Gini CART tree on ``x`` (N, F) float32, labels ``y`` and sample weights, level by level.

    At each node ``n_try`` features drawn without replacement are tried; the split lowering the
    weighted Gini impurity most is kept (thresholds halfway between consecutive distinct values;
    each side keeps at least ``min_samples_leaf`` samples). Pure nodes and nodes with no
    improving split become leaves.
    """
    n, n_features = x.shape
    onehot = np.zeros((n, n_classes), dtype=np.float64)
    onehot[np.arange(n), y] = weight
    feature: List[int] = [-1]
    threshold: List[float] = [0.0]
    left: List[int] = [-1]
    values: List[np.ndarray] = [onehot.sum(axis=0)[None]]
    samples = np.arange(n)
    node_of = np.zeros(n, dtype=np.int64)  # node id of each active sample
    depth = 0
    for level in range(max_depth):
        if samples.size == 0:
            break
        nodes, local = np.unique(node_of, return_inverse=True)
        m = len(nodes)
        tried = np.argsort(rng.random((m, n_features)), axis=1)[:, : min(n_try, n_features)]
        best_gain = np.zeros(m)
        best_feature = np.full(m, -1, dtype=np.int64)
        best_threshold = np.zeros(m, dtype=np.float32)
        weights = onehot[samples]
        for slot in range(tried.shape[1]):
            chosen = tried[:, slot]
            column = x[samples, chosen[local]]
            order = np.lexsort((column, local))
            seg, value = local[order], column[order]
            cumulative = np.cumsum(weights[order], axis=0)
            starts = np.searchsorted(seg, np.arange(m))
            ends = np.append(starts[1:], len(seg))
            before = np.where((starts > 0)[:, None], cumulative[np.maximum(starts - 1, 0)], 0.0)
            totals = cumulative[ends - 1] - before  # (m, K)
            left_counts = cumulative - before[seg]
            right_counts = totals[seg] - left_counts
            left_weight = left_counts.sum(axis=1)
            right_weight = right_counts.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                # Weighted child impurity, up to the node's total weight (a constant per node).
                score = (left_counts**2).sum(axis=1) / left_weight + (right_counts**2).sum(
                    axis=1
                ) / right_weight
            position = np.arange(len(seg)) - starts[seg]
            size = (ends - starts)[seg]
            ok = np.zeros(len(seg), dtype=bool)
            ok[:-1] = (seg[1:] == seg[:-1]) & (value[1:] > value[:-1])
            ok &= (position + 1 >= min_samples_leaf) & (size - position - 1 >= min_samples_leaf)
            score = np.where(ok, score, -np.inf)
            first = np.lexsort((-score, seg))[starts]  # best position of each node
            total_weight = totals.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                parent = (totals**2).sum(axis=1) / total_weight
            gain = np.where(ok[first], score[first] - parent, 0.0)
            better = gain > best_gain + 1e-12 * total_weight
            if better.any():
                best_gain[better] = gain[better]
                best_feature[better] = chosen[better]
                nxt = np.minimum(first + 1, len(value) - 1)
                best_threshold[better] = _midpoint(value[first], value[nxt])[better]
        split = best_feature >= 0
        if not split.any():
            break
        depth = level + 1
        children = np.full((m, 2), -1, dtype=np.int64)
        base = len(feature)
        children[split] = base + 2 * np.arange(int(split.sum()))[:, None] + np.array([0, 1])
        for k in np.flatnonzero(split):
            node = int(nodes[k])
            feature[node], threshold[node] = int(best_feature[k]), float(best_threshold[k])
            left[node] = int(children[k, 0])
        n_new = 2 * int(split.sum())
        feature += [-1] * n_new
        threshold += [0.0] * n_new
        left += [-1] * n_new
        keep = split[local]
        samples, local = samples[keep], local[keep]
        goes_left = x[samples, best_feature[local]] <= best_threshold[local]
        node_of = np.where(goes_left, children[local, 0], children[local, 1])
        counts = np.zeros((n_new, n_classes))
        for cls in range(n_classes):
            counts[:, cls] = np.bincount(
                node_of - base, weights=onehot[samples, cls], minlength=n_new
            )
        values.append(counts)
    value = np.concatenate(values, axis=0)
    value = value / np.maximum(value.sum(axis=1, keepdims=True), 1e-300)
    return FlatTree(
        np.asarray(feature, dtype=np.int64),
        np.asarray(threshold, dtype=np.float32),
        np.asarray(left, dtype=np.int64),
        value.astype(np.float32),
        depth,
    )


def _pack(array: np.ndarray, dtype: str) -> Dict[str, Any]:
    data = np.ascontiguousarray(array, dtype=np.dtype(dtype))
    return {
        "dtype": dtype,
        "shape": list(data.shape),
        "data": base64.b64encode(data.tobytes()).decode("ascii"),
    }


def _unpack(packed: Dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(packed["data"])
    return np.frombuffer(raw, dtype=np.dtype(packed["dtype"])).reshape(packed["shape"]).copy()


class RandomForest:
    """Random forest classifier (class indexes ``0..n_classes-1``).

    Args:
        n_trees: Trees in the forest.
        max_depth: Depth limit of each tree.
        min_samples_leaf: Fewest distinct samples on each side of a split.
        seed: Seeds the bootstrap samples and feature subsets (same seed, same forest).
    """

    def __init__(
        self, n_trees: int = 100, max_depth: int = 12, min_samples_leaf: int = 1, seed: int = 0
    ):
        self.n_trees = n_trees
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.seed = seed
        self.n_classes = 0
        self.depth = 0
        # The forest's trees joined into one set of flat arrays (absolute node ids).
        self.feature = np.zeros(0, dtype=np.int64)
        self.threshold = np.zeros(0, dtype=np.float32)
        self.left = np.zeros(0, dtype=np.int64)
        self.value = np.zeros((0, 0), dtype=np.float32)
        self.roots = np.zeros(0, dtype=np.int64)

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        n_classes: Optional[int] = None,
        sample_weight: Optional[np.ndarray] = None,
    ) -> RandomForest:
        """Grow the trees on bootstrap samples of ``x`` (N, F); ``sample_weight`` (N,) weighs the
        samples (e.g. class balancing), else all weigh 1."""
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
        self.n_classes = int(n_classes or y.max() + 1)
        weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, np.float64)
        rng = np.random.default_rng(self.seed)
        n_try = max(1, round(float(np.sqrt(x.shape[1]))))
        trees = []
        share = weight / weight.sum()
        for _ in range(self.n_trees):
            # The bootstrap sample draws samples in proportion to their weight: with balanced
            # weights every class fills the same share of every tree's sample (a balanced random
            # forest), which keeps a rare class better than weighting the impurity.
            drawn = rng.choice(len(y), size=len(y), p=share)
            draws = np.bincount(drawn, minlength=len(y))
            rows = np.flatnonzero(draws)
            trees.append(
                grow_tree(
                    x[rows],
                    y[rows],
                    draws[rows].astype(np.float64),
                    self.n_classes,
                    self.max_depth,
                    n_try,
                    rng,
                    self.min_samples_leaf,
                )
            )
        self._join(trees)
        return self

    def _join(self, trees: List[FlatTree]) -> None:
        offsets = np.cumsum([0] + [len(t.feature) for t in trees])
        self.roots = offsets[:-1].astype(np.int64)
        self.feature = np.concatenate([t.feature for t in trees])
        self.threshold = np.concatenate([t.threshold for t in trees])
        self.left = np.concatenate(
            [np.where(t.left >= 0, t.left + o, -1) for t, o in zip(trees, offsets)]
        )
        self.value = np.concatenate([t.value for t in trees])
        self.depth = max(t.depth for t in trees)

    def predict_proba(self, x: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """Mean of the trees' leaf class distributions, ``(N, n_classes)`` float32."""
        assert len(self.roots), "fit first"
        x = np.asarray(x, dtype=np.float32)
        leaf = self.feature < 0
        # Children come in pairs (right = left + 1). Leaves loop onto themselves (left =
        # the leaf, threshold +inf), so every pixel takes ``depth`` steps with no test of where
        # it stands: node = left[node] + (x > threshold[node]).
        feature = np.where(leaf, 0, self.feature).astype(np.int64)
        threshold = np.where(leaf, np.inf, self.threshold).astype(np.float32)
        left = np.where(leaf, np.arange(len(leaf)), self.left).astype(np.int64)
        n_features = x.shape[1]
        out = np.zeros((len(x), self.n_classes), dtype=np.float32)
        for start in range(0, len(x), chunk):
            part = x[start : start + chunk].ravel()
            base = (np.arange(len(part) // n_features) * n_features)[None, :]
            node = np.repeat(self.roots[:, None], base.shape[1], axis=1)  # (trees, pixels)
            for _ in range(self.depth):
                node = left[node] + (part[base + feature[node]] > threshold[node])
            out[start : start + chunk] = self.value[node].mean(axis=0)
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(x), axis=1)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "n_trees": self.n_trees,
            "max_depth": self.max_depth,
            "min_samples_leaf": self.min_samples_leaf,
            "seed": self.seed,
            "n_classes": self.n_classes,
            "depth": self.depth,
            "roots": _pack(self.roots, "<i4"),
            "feature": _pack(self.feature, "<i4"),
            "threshold": _pack(self.threshold, "<f4"),
            "left": _pack(self.left, "<i4"),
            "value": _pack(self.value, "<f4"),
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> RandomForest:
        model = cls(
            n_trees=int(data["n_trees"]),
            max_depth=int(data["max_depth"]),
            min_samples_leaf=int(data["min_samples_leaf"]),
            seed=int(data["seed"]),
        )
        model.n_classes = int(data["n_classes"])
        model.depth = int(data["depth"])
        model.roots = _unpack(data["roots"]).astype(np.int64)
        model.feature = _unpack(data["feature"]).astype(np.int64)
        model.threshold = _unpack(data["threshold"]).astype(np.float32)
        model.left = _unpack(data["left"]).astype(np.int64)
        model.value = _unpack(data["value"]).astype(np.float32)
        return model
