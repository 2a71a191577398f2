"""The output rasters of the embedding tools, written block by block at the input's resolution.

Each map reads a block of per-pixel features (:class:`.features.PixelFeatures`), computes its values
in numpy and writes them through the engine's atomic GeoTIFF writer on the input's grid (same CRS,
transform and size). Memory is bounded by the block size; the run can be cancelled between blocks
and leaves no partial file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..inference.cancel import CancelToken
from ..inference.writers import GeoTiffWriter
from .classifier import FittedClassifier, Standardizer, fit_classifier
from .classifier_file import ClassInfo
from .examples import Example, ExamplePixels, example_pixels
from .features import PixelFeatures
from .kmeans import minibatch_kmeans, nearest_centre, order_by_size

ProgressCallback = Callable[[float, str], None]
CLASS_NODATA = 255
SCORE_NODATA = -1.0
STATISTICS_SAMPLES = 20000


def _noop(fraction: float, message: str) -> None:
    pass


def write_map(
    path: Union[str, Path],
    features: PixelFeatures,
    bands: Sequence[str],
    dtype: str,
    nodata: float,
    compute: Callable[[np.ndarray, np.ndarray], np.ndarray],
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    colormap: Optional[Dict[int, Tuple[int, int, int, int]]] = None,
    category_names: Optional[List[str]] = None,
    extra: Sequence[Tuple[Union[str, Path], Sequence[str], str, float, Callable]] = (),
) -> List[Path]:
    """Write ``compute(features (N, F), valid (N,)) -> (len(bands), N)`` over every block.

    ``extra`` holds further rasters ``(path, bands, dtype, nodata, compute)`` written in the same
    pass (e.g. the probabilities beside the class map), so features are computed once per block.
    Invalid pixels are set to each raster's nodata.
    """
    progress = progress or _noop
    cancel = cancel or CancelToken()
    specs = [(path, bands, dtype, nodata, compute, colormap, category_names)]
    specs += [(p, b, d, n, c, None, None) for p, b, d, n, c in extra]
    writers = []
    try:
        for out, names, kind, missing, _, colours, categories in specs:
            writers.append(
                GeoTiffWriter(
                    Path(out),
                    features.grid,
                    1,
                    count=len(names),
                    dtype=kind,
                    nodata=missing,
                    descriptions=list(names),
                    colormap=colours,
                    category_names=categories,
                )
            )
        blocks = features.blocks()
        for index, (row, col, height, width) in enumerate(blocks):
            cancel.raise_if_cancelled()
            block, valid = features.block(row, col, height, width)
            flat_valid = valid.reshape(-1)
            selected = block.reshape(block.shape[0], -1).T[flat_valid]
            for writer, (_, names, kind, missing, compute_one, _, _) in zip(writers, specs):
                values = np.full((len(names), height * width), missing, dtype=np.float64)
                if flat_valid.any():
                    values[:, flat_valid] = compute_one(selected, flat_valid)
                writer.write_window(
                    row, col, values.reshape(len(names), height, width).astype(kind)
                )
            progress((index + 1) / len(blocks), f"{index + 1}/{len(blocks)} blocks of the map")
        return [writer.finish() for writer in writers]
    except BaseException:
        for writer in writers:
            writer.abort()
        raise


def colormap_of(classes: Sequence[ClassInfo]) -> Dict[int, Tuple[int, int, int, int]]:
    colours = {}
    for info in classes:
        rgb = int(info.color[1:], 16)
        colours[info.value] = ((rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255, 255)
    return colours


def category_names_of(classes: Sequence[ClassInfo]) -> List[str]:
    names = [""] * (max(c.value for c in classes) + 1)
    for info in classes:
        names[info.value] = info.name
    return names


# Classification --------------------------------------------------------------------------------


@dataclass
class TrainingSet:
    """Pixel features of the examples, with their class index and example (group)."""

    features: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    classes: List[ClassInfo]
    pixels_per_class: Dict[str, int]
    examples_per_class: Dict[str, int]
    off_grid: List[str]  # ids of examples outside the raster
    on_nodata: List[str]  # ids of examples whose every pixel is nodata


def training_set(
    features: PixelFeatures,
    examples: Sequence[Example],
    classes: Sequence[ClassInfo],
    labels_of: Callable[[Any], int],
    max_pixels: int = 400,
    seed: int = 0,
) -> TrainingSet:
    """The features of the examples' pixels; examples off the raster or on nodata are listed."""
    found: List[ExamplePixels] = example_pixels(examples, features.grid, max_pixels, seed)
    rows = np.concatenate([f.rows for f in found]) if found else np.zeros(0, dtype=np.int64)
    cols = np.concatenate([f.cols for f in found]) if found else np.zeros(0, dtype=np.int64)
    groups = (
        np.concatenate([np.full(len(f.rows), i) for i, f in enumerate(found)]) if found else rows
    )
    labels = (
        np.concatenate([np.full(len(f.rows), labels_of(f.example.label)) for f in found])
        if found
        else rows
    )
    values, valid = features.at(rows, cols) if len(rows) else (np.zeros((0, 0)), rows.astype(bool))
    off_grid = [f.example.ident for f in found if len(f.rows) == 0]
    covered = set(groups[valid].tolist())
    on_nodata = [f.example.ident for i, f in enumerate(found) if len(f.rows) and i not in covered]
    labels, groups, values = labels[valid], groups[valid], values[valid]
    pixels = {c.name: int((labels == k).sum()) for k, c in enumerate(classes)}
    per_class = {c.name: len(set(groups[labels == k].tolist())) for k, c in enumerate(classes)}
    return TrainingSet(
        values,
        labels.astype(np.int64),
        groups,
        list(classes),
        pixels,
        per_class,
        off_grid,
        on_nodata,
    )


def fit_on_examples(
    training: TrainingSet,
    method: str = "auto",
    seed: int = 0,
    band_weight: float = 1.0,
    layout=None,
) -> FittedClassifier:
    weights = layout.block_weights(band_weight) if layout is not None else None
    return fit_classifier(
        training.features,
        training.labels,
        training.groups,
        len(training.classes),
        method=method,
        seed=seed,
        feature_weights=weights,
    )


def classification_map(
    features: PixelFeatures,
    predict: Callable[[np.ndarray], np.ndarray],
    classes: Sequence[ClassInfo],
    out_path: Union[str, Path],
    probability_path: Optional[Union[str, Path]] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> List[Path]:
    """The most probable class per pixel (uint8, coloured, named) and optionally the probabilities."""
    values = np.array([c.value for c in classes], dtype=np.uint8)
    nodata = next(v for v in range(255, -1, -1) if v not in set(values.tolist()))
    cache: Dict[str, Any] = {}

    def probabilities(block: np.ndarray) -> np.ndarray:
        if cache.get("block") is not block:  # both rasters share one prediction per block
            cache["block"], cache["p"] = block, predict(block)
        return cache["p"]

    extra = []
    if probability_path is not None:
        extra.append(
            (
                probability_path,
                [c.name for c in classes],
                "float32",
                math.nan,
                lambda block, valid: probabilities(block).T,
            )
        )
    return write_map(
        out_path,
        features,
        ["class"],
        "uint8",
        nodata,
        lambda block, valid: values[probabilities(block).argmax(axis=1)][None],
        progress,
        cancel,
        colormap=colormap_of(classes),
        category_names=category_names_of(classes),
        extra=extra,
    )


# Similarity, clusters, change --------------------------------------------------------------------


def scene_standardizer(features: PixelFeatures, seed: int = 0) -> Standardizer:
    """Per-feature mean and standard deviation of the scene (from a seeded sample of pixels)."""
    sample = features.sample(STATISTICS_SAMPLES, seed)
    if len(sample) == 0:
        raise ValueError("the raster has no valid pixel where the embeddings are defined")
    return Standardizer.fit(sample)


@dataclass
class SceneSpace:
    """Where distances between places are measured: features centred on the scene's mean, scaled
    by its spread per feature, and weighted per block (embedding, bands)."""

    standardize: Standardizer
    weights: np.ndarray
    spread: float  # mean squared norm of a scene pixel's vector in this space

    @classmethod
    def of(cls, features: PixelFeatures, band_weight: float, seed: int = 0) -> SceneSpace:
        sample = features.sample(STATISTICS_SAMPLES, seed)
        if len(sample) == 0:
            raise ValueError("the raster has no valid pixel where the embeddings are defined")
        standardize = Standardizer.fit(sample)
        weights = features.layout.block_weights(band_weight)
        spread = float(((standardize(sample) * weights) ** 2).sum(axis=1).mean())
        return cls(standardize, weights, spread)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return self.standardize(features) * self.weights


def relative_distance(a: np.ndarray, b: np.ndarray, spread: float) -> np.ndarray:
    """``|a - b|^2 / (|a|^2 + |b|^2 + 2 spread) / 2``, in [0, 1), row by row (or all pairs when
    ``a`` is ``(N, 1, F)`` and ``b`` ``(1, R, F)``).

    For places far from the scene's average (long vectors) this is the cosine distance
    ``(1 - cos) / 2`` of two vectors of equal length; for places near the average, where the
    direction of a short vector is mostly noise, it falls back to their distance relative to the
    scene's spread. Plain cosine distance of centred vectors flags such places as changed at the
    slightest radiometric difference (measured: ``scripts/embedtools_measure.py``).
    """
    difference = ((a - b) ** 2).sum(axis=-1)
    return difference / ((a**2).sum(axis=-1) + (b**2).sum(axis=-1) + 2.0 * spread) / 2.0


def similarity_map(
    features: PixelFeatures,
    references: np.ndarray,
    out_path: Union[str, Path],
    band_weight: float = 1.0,
    seed: int = 0,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> List[Path]:
    """Per pixel, ``1 -`` its :func:`relative_distance` to the nearest reference, in (0, 1].

    Args:
        references: ``(R, F)`` features, one row per reference place (the mean of its pixels).

    Features are centred on the scene's mean and scaled by its spread first: what is compared is
    how a place differs from the scene as a whole, not the part all places share.
    """
    space = SceneSpace.of(features, band_weight, seed)
    targets = space(references)
    target_norms = (targets**2).sum(axis=1)

    def score(block: np.ndarray, valid: np.ndarray) -> np.ndarray:
        vectors = space(block)
        norms = (vectors**2).sum(axis=1)[:, None] + target_norms[None, :]
        # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: one matrix product for all references.
        distances = (norms - 2.0 * vectors @ targets.T) / (norms + 2.0 * space.spread) / 2.0
        return (1.0 - np.clip(distances.min(axis=1), 0.0, 1.0))[None]

    return write_map(
        out_path, features, ["similarity"], "float32", SCORE_NODATA, score, progress, cancel
    )


def cluster_map(
    features: PixelFeatures,
    clusters: int,
    out_path: Union[str, Path],
    band_weight: float = 1.0,
    seed: int = 0,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Tuple[List[Path], List[ClassInfo]]:
    """Mini-batch k-means on a seeded sample of pixels, then every pixel's cluster (1..k)."""
    from ..class_colours import PALETTE

    space = SceneSpace.of(features, band_weight, seed)
    sample = space(features.sample(STATISTICS_SAMPLES, seed + 1))
    centres = order_by_size(sample, minibatch_kmeans(sample, clusters, seed=seed))
    classes = [
        ClassInfo(value=k + 1, name=f"cluster {k + 1}", color=PALETTE[k % len(PALETTE)])
        for k in range(clusters)
    ]

    def assign(block: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return (nearest_centre(space(block), centres) + 1)[None]

    written = write_map(
        out_path,
        features,
        ["cluster"],
        "uint8",
        0,
        assign,
        progress,
        cancel,
        colormap=colormap_of(classes),
        category_names=category_names_of(classes),
    )
    return written, classes


class PairedFeatures:
    """Two dates' features on one grid, read block by block together (for :func:`change_map`)."""

    def __init__(self, before: PixelFeatures, after: PixelFeatures):
        if (before.grid.width, before.grid.height) != (after.grid.width, after.grid.height):
            raise ValueError("the two dates must be on one grid (warp the later one first)")
        self.before, self.after = before, after
        self.grid = before.grid
        self.layout = before.layout

    def blocks(self):
        return self.before.blocks()

    def block(self, row: int, col: int, height: int, width: int):
        first, valid_first = self.before.block(row, col, height, width)
        second, valid_second = self.after.block(row, col, height, width)
        return np.concatenate([first, second]), valid_first & valid_second


def change_map(
    before: PixelFeatures,
    after: PixelFeatures,
    out_path: Union[str, Path],
    threshold: Optional[float] = None,
    mask_path: Optional[Union[str, Path]] = None,
    band_weight: float = 0.0,
    seed: int = 0,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> List[Path]:
    """Per pixel, the :func:`relative_distance` between the two dates' features, in [0, 1).

    Each date is centred on its own scene mean, and both are scaled by the earlier date's spread:
    a change of illumination, season or calibration that shifts the whole scene moves the mean,
    not the difference between a place and its scene, and scores low. With ``threshold``, pixels
    scoring above it are 1 in the mask at ``mask_path`` (0 elsewhere).
    """
    first = SceneSpace.of(before, band_weight, seed)
    later = scene_standardizer(after, seed)
    second = SceneSpace(Standardizer(later.mean, first.standardize.scale), first.weights, 0.0)
    n = before.layout.size
    paired = PairedFeatures(before, after)
    cache: Dict[str, Any] = {}

    def score(block: np.ndarray, valid: np.ndarray) -> np.ndarray:
        if cache.get("block") is not block:  # the mask reuses the block's scores
            distance = relative_distance(first(block[:, :n]), second(block[:, n:]), first.spread)
            cache["block"], cache["score"] = block, distance[None]
        return cache["score"]

    extra = []
    if mask_path is not None and threshold is not None:
        extra.append(
            (
                mask_path,
                ["change"],
                "uint8",
                255,
                lambda block, valid: (score(block, valid) > threshold).astype(np.uint8),
            )
        )
    return write_map(
        out_path, paired, ["change"], "float32", SCORE_NODATA, score, progress, cancel, extra=extra
    )


def mean_features(
    features: PixelFeatures, pixels: Sequence[ExamplePixels]
) -> Tuple[np.ndarray, List[str]]:
    """One mean feature vector per example with valid pixels; ids of examples without any."""
    rows, missing = [], []
    for item in pixels:
        if len(item.rows) == 0:
            missing.append(item.example.ident)
            continue
        values, valid = features.at(item.rows, item.cols)
        if not valid.any():
            missing.append(item.example.ident)
            continue
        rows.append(values[valid].mean(axis=0))
    return (
        np.array(rows, dtype=np.float32) if rows else np.zeros((0, features.layout.size))
    ), missing


def keep_classes_with_pixels(training: TrainingSet) -> Tuple[TrainingSet, List[ClassInfo]]:
    """Drop the classes none of whose examples has a valid pixel, renumbering the others."""
    present = [k for k in range(len(training.classes)) if (training.labels == k).any()]
    if len(present) == len(training.classes):
        return training, training.classes
    lookup = np.full(len(training.classes), -1, dtype=np.int64)
    lookup[present] = np.arange(len(present))
    classes = [training.classes[k] for k in present]
    names = {c.name for c in classes}
    kept = TrainingSet(
        training.features,
        lookup[training.labels],
        training.groups,
        classes,
        {n: v for n, v in training.pixels_per_class.items() if n in names},
        {n: v for n, v in training.examples_per_class.items() if n in names},
        training.off_grid,
        training.on_nodata,
    )
    return kept, classes
