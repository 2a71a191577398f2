"""Classifiers fitted on a few labelled examples, in numpy: logistic regression, k-NN and a random
forest (:mod:`.forest`).

All see standardised features and balance the classes (a class with ten times the examples gets a
tenth of the weight per example), so a few polygons of a rare class are not swamped. Which one (and
which regularisation or k) is chosen by cross-validation over *examples*, not pixels: pixels of one
polygon are near copies of each other, and a fold that held out half of a polygon would score the
classifier on what it already saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .forest import RandomForest

METHODS = ("auto", "logistic", "knn", "forest")
# Candidates cross-validation chooses from ("auto"), or tunes within one method.
LOGISTIC_L2 = (1e-3, 1e-2, 1e-1)
KNN_K = (5, 15)
FOREST_TREES = (100,)  # the setting of the acceptance suite's raw-band baseline
MAX_KNN_SAMPLES = 4000  # reference pixels kept by k-NN: bounds the cost of every map pixel


class ClassifierError(ValueError):
    """The examples cannot train a classifier (one class only, no valid pixel...)."""


@dataclass
class Standardizer:
    """Per-feature ``(x - mean) / scale``; features constant over the examples are left centred."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> Standardizer:
        mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale[scale < 1e-6] = 1.0
        return cls(mean.astype(np.float32), scale.astype(np.float32))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale).astype(np.float32)


def balanced_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-sample weights that give every class the same total weight (mean weight 1)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    per_class = np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0)
    return per_class[labels]


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


@dataclass
class LogisticRegression:
    """Multinomial logistic regression with an L2 penalty, fitted by accelerated gradient descent.

    The loss is the class-balanced mean cross-entropy plus ``l2 / 2 * |W|^2``; it is convex and
    smooth, and its gradient's Lipschitz constant is bounded by ``|X|_2^2 / n + l2``, which gives a
    step size that always converges (no line search).
    """

    l2: float = 1e-2
    iterations: int = 300
    weights: Optional[np.ndarray] = None  # (F, K)
    bias: Optional[np.ndarray] = None  # (K,)

    def fit(self, features: np.ndarray, labels: np.ndarray, n_classes: int) -> LogisticRegression:
        x = features.astype(np.float64)
        n, f = x.shape
        sample_weight = balanced_weights(labels, n_classes)[:, None] / n
        onehot = np.zeros((n, n_classes))
        onehot[np.arange(n), labels] = 1.0
        xb = np.hstack([x, np.ones((n, 1))])
        # Bound of the loss's curvature: ½ of the largest eigenvalue of X^T D X for the weights D.
        lipschitz = 0.5 * np.linalg.norm(xb * np.sqrt(sample_weight), 2) ** 2 + self.l2
        step = 1.0 / lipschitz
        theta = np.zeros((f + 1, n_classes))
        previous = theta.copy()
        for t in range(1, self.iterations + 1):
            look = theta + (t - 2) / (t + 1) * (theta - previous) if t > 1 else theta
            probabilities = _softmax(xb @ look)
            gradient = xb.T @ (sample_weight * (probabilities - onehot))
            gradient[:f] += self.l2 * look[:f]
            previous, theta = theta, look - step * gradient
        self.weights, self.bias = theta[:f].astype(np.float32), theta[f].astype(np.float32)
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        assert self.weights is not None and self.bias is not None, "fit first"
        return _softmax(features @ self.weights + self.bias)

    def to_dict(self) -> Dict[str, Any]:
        assert self.weights is not None and self.bias is not None
        return {"l2": self.l2, "weights": self.weights.tolist(), "bias": self.bias.tolist()}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> LogisticRegression:
        return cls(
            l2=float(data["l2"]),
            weights=np.asarray(data["weights"], dtype=np.float32),
            bias=np.asarray(data["bias"], dtype=np.float32),
        )


@dataclass
class NearestNeighbours:
    """k nearest neighbours by Euclidean distance on (block-weighted) standardised features.

    Votes are weighted by class balance, so a class with few examples is not outvoted by number
    alone. At most :data:`MAX_KNN_SAMPLES` reference pixels are kept (evenly per class, seeded).
    """

    k: int = 5
    feature_weights: Optional[np.ndarray] = None
    references: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    vote_weights: Optional[np.ndarray] = None
    n_classes: int = 0

    def fit(
        self, features: np.ndarray, labels: np.ndarray, n_classes: int, seed: int = 0
    ) -> NearestNeighbours:
        keep = _balanced_subset(labels, n_classes, MAX_KNN_SAMPLES, seed)
        weights = self.feature_weights if self.feature_weights is not None else 1.0
        self.references = (features[keep] * weights).astype(np.float32)
        self.labels = labels[keep].astype(np.int64)
        counts = np.bincount(self.labels, minlength=n_classes).astype(np.float64)
        self.vote_weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
        self.n_classes = n_classes
        return self

    def predict_proba(self, features: np.ndarray, chunk: int = 4096) -> np.ndarray:
        assert self.references is not None and self.labels is not None
        assert self.vote_weights is not None
        weights = self.feature_weights if self.feature_weights is not None else 1.0
        k = min(self.k, len(self.references))
        reference_norms = (self.references**2).sum(axis=1)
        out = np.zeros((len(features), self.n_classes), dtype=np.float32)
        for start in range(0, len(features), chunk):
            query = (features[start : start + chunk] * weights).astype(np.float32)
            distances = reference_norms[None, :] - 2.0 * query @ self.references.T
            nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
            votes = np.zeros((len(query), self.n_classes))
            neighbour_labels = self.labels[nearest]
            for cls in range(self.n_classes):
                votes[:, cls] = (neighbour_labels == cls).sum(axis=1) * self.vote_weights[cls]
            out[start : start + chunk] = votes / np.maximum(votes.sum(axis=1, keepdims=True), 1e-12)
        return out

    def to_dict(self) -> Dict[str, Any]:
        assert self.references is not None and self.labels is not None
        return {
            "k": self.k,
            "n_classes": self.n_classes,
            "feature_weights": None
            if self.feature_weights is None
            else np.asarray(self.feature_weights).tolist(),
            "references": self.references.tolist(),
            "labels": self.labels.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> NearestNeighbours:
        model = cls(
            k=int(data["k"]),
            feature_weights=None
            if data.get("feature_weights") is None
            else np.asarray(data["feature_weights"], dtype=np.float32),
        )
        model.references = np.asarray(data["references"], dtype=np.float32)
        model.labels = np.asarray(data["labels"], dtype=np.int64)
        model.n_classes = int(data["n_classes"])
        counts = np.bincount(model.labels, minlength=model.n_classes).astype(np.float64)
        model.vote_weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
        return model


def _balanced_subset(labels: np.ndarray, n_classes: int, limit: int, seed: int) -> np.ndarray:
    if len(labels) <= limit:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    per_class = max(1, limit // n_classes)
    keep = []
    for cls in range(n_classes):
        members = np.flatnonzero(labels == cls)
        keep.append(rng.choice(members, size=min(per_class, len(members)), replace=False))
    return np.sort(np.concatenate(keep))


@dataclass
class Candidate:
    """One classifier setting that cross-validation compares."""

    method: str  # logistic, knn or forest
    parameter: float  # l2, k or the number of trees

    def build(self, feature_weights: Optional[np.ndarray], seed: int = 0) -> Any:
        if self.method == "logistic":
            return LogisticRegression(l2=self.parameter)
        if self.method == "forest":
            return RandomForest(n_trees=int(self.parameter), seed=seed)
        return NearestNeighbours(k=int(self.parameter), feature_weights=feature_weights)

    def fit(
        self,
        feature_weights: Optional[np.ndarray],
        features: np.ndarray,
        labels: np.ndarray,
        n_classes: int,
        seed: int = 0,
    ) -> Any:
        """A model of this setting fitted on standardised ``features``, classes balanced."""
        model = self.build(feature_weights, seed)
        if isinstance(model, NearestNeighbours):
            return model.fit(features, labels, n_classes, seed)
        if isinstance(model, RandomForest):
            return model.fit(features, labels, n_classes, balanced_weights(labels, n_classes))
        return model.fit(features, labels, n_classes)

    def describe(self) -> str:
        if self.method == "logistic":
            return f"logistic regression (L2 {self.parameter:g})"
        if self.method == "forest":
            return f"random forest ({int(self.parameter)} trees)"
        return f"k-NN (k = {int(self.parameter)})"


def candidates(method: str) -> List[Candidate]:
    if method not in METHODS:
        raise ClassifierError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    found = []
    if method in ("auto", "logistic"):
        found += [Candidate("logistic", l2) for l2 in LOGISTIC_L2]
    if method in ("auto", "knn"):
        found += [Candidate("knn", k) for k in KNN_K]
    if method in ("auto", "forest"):
        found += [Candidate("forest", trees) for trees in FOREST_TREES]
    return found


def group_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """A fold index per sample; all samples of a group (one example) share a fold.

    Groups are dealt to folds class by class, in a seeded random order, so every fold holds
    examples of every class that has at least ``n_folds`` examples.
    """
    rng = np.random.default_rng(seed)
    fold_of_group: Dict[int, int] = {}
    unique_groups = np.unique(groups)
    group_class = {int(g): int(np.bincount(labels[groups == g]).argmax()) for g in unique_groups}
    offset = 0
    for cls in sorted(set(group_class.values())):
        members = [g for g, c in group_class.items() if c == cls]
        rng.shuffle(members)
        for i, group in enumerate(members):
            fold_of_group[group] = (i + offset) % n_folds
        offset += len(members)
    return np.array([fold_of_group[int(g)] for g in groups])


@dataclass
class CrossValidation:
    """Held-out scores of one candidate: accuracy over pixels, balanced accuracy over classes."""

    candidate: Candidate
    accuracy: float
    balanced_accuracy: float
    folds: int
    confusion: List[List[int]] = field(default_factory=list)


def cross_validate(
    candidate: Candidate,
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    n_classes: int,
    n_folds: int = 5,
    seed: int = 0,
    feature_weights: Optional[np.ndarray] = None,
) -> CrossValidation:
    """Score ``candidate`` on examples it did not see (group k-fold, see :func:`group_folds`)."""
    folds = group_folds(labels, groups, n_folds, seed)
    predicted = np.full(len(labels), -1)
    for fold in range(n_folds):
        test = folds == fold
        train = ~test
        if not test.any() or len(np.unique(labels[train])) < 2:
            continue
        standardize = Standardizer.fit(features[train])
        model = candidate.fit(
            feature_weights, standardize(features[train]), labels[train], n_classes, seed
        )
        predicted[test] = model.predict_proba(standardize(features[test])).argmax(axis=1)
    scored = predicted >= 0
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (labels[scored], predicted[scored]), 1)
    totals = confusion.sum(axis=1)
    present = totals > 0
    recalls = np.diag(confusion)[present] / totals[present]
    return CrossValidation(
        candidate=candidate,
        accuracy=float(np.trace(confusion) / max(1, confusion.sum())),
        balanced_accuracy=float(recalls.mean()) if recalls.size else 0.0,
        folds=n_folds,
        confusion=confusion.tolist(),
    )


@dataclass
class FittedClassifier:
    """A classifier fitted on all examples, with its standardisation and cross-validation."""

    model: Any
    standardize: Standardizer
    candidate: Candidate
    scores: List[CrossValidation]

    @property
    def chosen(self) -> CrossValidation:
        return next(s for s in self.scores if s.candidate == self.candidate)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(self.standardize(features))


def fit_classifier(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    n_classes: int,
    method: str = "auto",
    seed: int = 0,
    feature_weights: Optional[np.ndarray] = None,
) -> FittedClassifier:
    """Cross-validate the candidates of ``method``, keep the best, refit it on every example.

    Args:
        features: ``(N, F)`` pixel features.
        labels: ``(N,)`` class indexes ``0..n_classes-1``.
        groups: ``(N,)`` the example each pixel comes from (folds keep examples whole).
        n_classes: number of classes.
        method: ``auto`` (logistic regression, k-NN or a random forest, whichever
            cross-validates best), ``logistic``, ``knn`` or ``forest``.
        seed: seeds the folds, k-NN's subsampling and the forest.
        feature_weights: per-feature weights for k-NN distances (see ``FeatureLayout``).
    """
    present = np.unique(labels)
    if len(present) < 2:
        raise ClassifierError(
            "the examples hold only one class; label examples of at least two classes"
        )
    n_groups = len(np.unique(groups))
    smallest = min(len(np.unique(groups[labels == c])) for c in present)
    n_folds = int(min(5, max(2, smallest)))
    if n_groups < 4:
        n_folds = 2
    scores = [
        cross_validate(c, features, labels, groups, n_classes, n_folds, seed, feature_weights)
        for c in candidates(method)
    ]
    best = max(scores, key=lambda s: (s.balanced_accuracy, s.accuracy))
    standardize = Standardizer.fit(features)
    model = best.candidate.fit(feature_weights, standardize(features), labels, n_classes, seed)
    return FittedClassifier(model, standardize, best.candidate, scores)


def describe_scores(scores: Sequence[CrossValidation]) -> List[str]:
    """One line per candidate for the log."""
    return [
        f"{s.candidate.describe()}: accuracy {s.accuracy:.3f}, balanced accuracy "
        f"{s.balanced_accuracy:.3f} ({s.folds}-fold over examples)"
        for s in scores
    ]
