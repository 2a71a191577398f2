"""Per-sample scores of an evaluation and the paired bootstrap that compares two models with them.

Two arms of an ablation scored on the same test tiles differ by training *and* by which tiles
happen to be in the test set. Three seeds give three differences; the range of three numbers is
not a 95 % interval (it covers the mean about 75 % of the time). With what each test sample
contributed to each arm's score, the comparison can be resampled: draw the test samples of each
seed again with replacement (the same draw for both arms, so the comparison stays paired),
recompute both arms' headline score and their difference per seed, and average over the seeds.
The percentiles of that average over many draws are the interval.

Overlapping tiles (cut with a stride below their size) are not independent, so the unit that is
drawn is a *block*: the tiles whose upper-left corner falls in one cell of two tile sizes on the
group's grid (whole patches are blocks of their own).

A record (:func:`per_sample_record`) holds what the headline scores need, per scored sample:

* ``scene`` (scene classification): the class scores and the reference;
* ``confusion`` (segmentation): the tile's confusion matrix;
* ``tile`` (restoration): the tile's metrics, which the evaluation averages over tiles.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from .. import scores as task_metrics

DRAWS = 2000
LEVEL = 0.95
METHOD = (
    "paired bootstrap over test samples within each seed (blocks of 2 x 2 tile sizes; both arms "
    "resampled alike), per-seed differences averaged over seeds, percentile interval"
)


def sample_block(unit: Any) -> str:
    """The resampling block of a holdout unit: its group and its cell of two tile sizes."""
    height, width = max(int(unit.height), 1), max(int(unit.width), 1)
    return f"{unit.group}:{int(unit.row) // (2 * height)}:{int(unit.col) // (2 * width)}"


def per_sample_record(
    kind: str,
    model: Sequence[Any],
    baseline: Sequence[Any],
    ids: Sequence[int],
    blocks: Sequence[str],
    targets: Optional[Sequence[Any]] = None,
    multilabel: bool = False,
    num_classes: Optional[int] = None,
) -> Dict[str, Any]:
    """A JSON-serialisable record of what each scored sample contributes (see module docstring).

    Args:
        kind: ``scene``, ``confusion`` or ``tile``.
        model, baseline: One entry per scored sample, in the same order.
        ids: The samples' indexes in the dataset (pairs arms scored on the same split).
        blocks: Each sample's resampling block (:func:`sample_block`).
        targets: Scene classification only: each sample's reference.
    """
    if not len(model) == len(baseline) == len(ids) == len(blocks):
        raise ValueError("per-sample model, baseline, ids and blocks must have one entry a sample")
    return {
        "kind": kind,
        "ids": [int(i) for i in ids],
        "blocks": [str(b) for b in blocks],
        "model": _plain(model),
        "baseline": _plain(baseline),
        "targets": None if targets is None else _plain(targets),
        "multilabel": bool(multilabel),
        "num_classes": None if num_classes is None else int(num_classes),
    }


def _plain(values: Sequence[Any]) -> List[Any]:
    out = []
    for value in values:
        if isinstance(value, Mapping):
            out.append({k: float(v) for k, v in value.items()})
        else:
            out.append(np.asarray(value).tolist())
    return out


class ScoreOfSamples:
    """Recomputes one headline score of one arm on any multiset of its samples (fast)."""

    def __init__(self, record: Mapping[str, Any], arm: str, key: str):
        self.kind = record["kind"]
        self.key = key
        self.multilabel = bool(record.get("multilabel"))
        values = record[arm]
        if self.kind == "scene":
            self.scores = np.asarray(values, dtype=np.float64)
            targets = np.asarray(record["targets"])
            self.targets = targets if self.multilabel else targets.astype(np.int64).reshape(-1)
        elif self.kind == "confusion":
            k = int(record["num_classes"])
            self.confusion = np.asarray(values, dtype=np.float64).reshape(len(values), k, k)
        elif self.kind == "tile":
            self.values = np.asarray([v.get(key, np.nan) for v in values], dtype=np.float64)
        else:
            raise ValueError(f"unknown per-sample record kind {self.kind!r}")

    def __call__(self, indices: np.ndarray) -> float:
        if self.kind == "scene":
            metrics = task_metrics.classification_metrics(
                self.targets[indices], self.scores[indices], self.multilabel
            )
            return float(metrics[self.key])
        if self.kind == "confusion":
            matrix = self.confusion[indices].sum(axis=0)
            if self.key == "overall_accuracy":
                return float(task_metrics.overall_accuracy(matrix))
            if self.key == "mean_iou":
                return float(task_metrics.mean_iou(matrix))
            raise ValueError(f"segmentation per-sample records give OA and mIoU, not {self.key}")
        with np.errstate(all="ignore"):
            return float(np.nanmean(self.values[indices]))


def _block_members(blocks: Sequence[str]) -> List[np.ndarray]:
    """Sample indexes of each block."""
    _, block_of = np.unique(np.asarray(blocks), return_inverse=True)
    return [np.flatnonzero(block_of == b) for b in range(int(block_of.max()) + 1)]


def _draw(members: List[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Sample indexes of one bootstrap draw of whole blocks (with replacement)."""
    chosen = rng.integers(len(members), size=len(members))
    return np.concatenate([members[b] for b in chosen])


def paired_bootstrap(
    pairs: Sequence[tuple],
    key: str,
    draws: int = DRAWS,
    seed: int = 0,
    level: float = LEVEL,
) -> Dict[str, Any]:
    """Interval of the seed-averaged difference ``first - second`` of a headline score.

    Args:
        pairs: Per seed, ``(first record, second record)`` (:func:`per_sample_record`) or
            ``(first record, second record, first arm, second arm)`` to compare e.g. the model of
            one record with its baseline (arms default to ``"model"``).
        key: The headline score (higher is better or not: the difference is signed).
        draws: Bootstrap draws.
        seed: Seed of the draws (the interval is reproducible).
        level: Central coverage of the interval.

    Returns:
        ``{"mean", "low", "high", "n_seeds", "n_samples" (per seed), "n_blocks" (per seed),
        "draws", "level", "method"}``; ``mean`` is the average of the per-seed differences on the
        full test sets.

    Raises:
        ValueError: the records of a pair were not scored on the same samples.
    """
    if not pairs:
        raise ValueError("no seeds to compare")
    rng = np.random.default_rng(seed)
    prepared = []
    for pair in pairs:
        first, second = pair[0], pair[1]
        arms = (pair[2], pair[3]) if len(pair) == 4 else ("model", "model")
        if first["ids"] != second["ids"]:
            raise ValueError(
                "the two arms were scored on different test samples; a paired comparison needs "
                "the same split (same seed and data)"
            )
        if not first["ids"]:
            raise ValueError("a seed has no scored test sample")
        members = _block_members(first["blocks"])
        a, b = ScoreOfSamples(first, arms[0], key), ScoreOfSamples(second, arms[1], key)
        everything = np.arange(len(first["ids"]))
        prepared.append((members, a, b, a(everything) - b(everything), len(everything)))
    differences = np.empty(draws)
    for d in range(draws):
        per_seed = []
        for members, a, b, _, _ in prepared:
            indices = _draw(members, rng)
            per_seed.append(a(indices) - b(indices))
        differences[d] = np.nanmean(per_seed) if np.isfinite(per_seed).any() else np.nan
    tail = (1.0 - level) / 2 * 100
    finite = differences[np.isfinite(differences)]
    low, high = (
        (float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail)))
        if finite.size
        else (None, None)
    )
    return {
        "mean": float(np.mean([p[3] for p in prepared])),
        "low": low,
        "high": high,
        "n_seeds": len(prepared),
        "n_samples": [p[4] for p in prepared],
        "n_blocks": [len(p[0]) for p in prepared],
        "draws": int(draws),
        "level": float(level),
        "method": METHOD,
    }
