"""Representation health: how much of a labelled patch's content an encoder's embeddings carry.

``msgfm probe --encoder CKPT_OR_ONNX`` embeds every labelled patch the project has (BigEarthNet
Sentinel-2 patches with their 19-class multi-labels; BigEarthNet Sentinel-1 patches when the encoder
takes SAR), mean-pools each patch's embedding map (as a user who pools ``msgfm predict`` output
would) and scores the pooled vectors with

* a **linear probe**: one-vs-rest L2-regularised logistic regression, leave-one-patch-out, the
  regularisation chosen by an inner leave-one-out on the training patches only;
* a **k-NN probe**: cosine similarity, the label vector averaged over the k nearest training patches;

both reported as micro and macro mean average precision over the pooled held-out predictions, and
the **effective rank** (RankMe: the exponential of the entropy of the normalised singular values of
the tile embeddings), which falls when the embeddings collapse onto a few directions.

Every figure is set beside the same probe on randomly initialised encoders of the same config
(``--random-seeds`` seeds, same normalisation) and on raw band statistics (per-band mean and standard
deviation of the normalised patch), so a pretraining recipe is judged against what needs no
pretraining at all. Everything here is numpy except the encoder's forward pass.

With a few dozen patches, chance is far from zero and one score moves by several hundredths from
patch to patch, so each set's report also gives

* the **class prior** (each held-out patch scored with the other patches' label frequencies) and a
  **permutation baseline** (the encoder's features with the labels shuffled across patches: what
  the probes find where there is nothing to find), the floor every score stands on;
* the **standard error** of every micro mAP and of every margin (encoder minus random init, band
  statistics, class prior), from a bootstrap over patches of the held-out predictions (paired:
  the same patches drawn for both sides of a margin).

A recipe is chosen on one part of the patches and reported on the other: ``part="validation"``
(what pretraining logs and every selection or early stop uses) and ``part="final"`` (scored once,
for the report) split each set by patch, deterministically (:func:`split_probe_set`). A sensor
the encoder has no statistics for (never pretrained on it) is not probed: its patch embedding would
be untrained, and the report says so instead.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from .. import scores as task_metrics

# Inner-CV grid of the linear probe's L2 weight (on standardised features, mean loss).
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)
KNN_K = 3
BOOTSTRAP_DRAWS = 1000
PERMUTATIONS = 5
PARTS = ("all", "validation", "final")


@dataclass
class ProbeSet:
    """Labelled patches of one sensor.

    Attributes:
        name: Short name (``bigearthnet-s2``).
        sensor: Sensor the patches are in.
        images: Raw ``(C, H, W)`` patches in registry units (NaN = no data).
        targets: ``(N, K)`` multi-hot labels.
        patches: Patch identifiers.
        class_names: The K class names.
        product_level: The patches' product level (``L2A``), None for sensors without levels.
    """

    name: str
    sensor: str
    images: List[np.ndarray]
    targets: np.ndarray
    patches: List[str]
    class_names: Sequence[str] = field(default_factory=list)
    product_level: Optional[str] = None


def normalization_for(normalization: Mapping[str, Any], probe: ProbeSet) -> Dict[str, Any]:
    """An encoder's statistics (``{sensor: entry}`` or a document with ``"sensors"``) with the
    probe sensor's entry for the probe's product level: BigEarthNet's L2A patches are normalised
    with L2A statistics even when the corpus was L1C
    (:func:`backend.data.tasks.normalization.statistics_for_level`)."""
    from ..data.tasks.normalization import statistics_for_level

    per_sensor = dict(normalization.get("sensors", normalization))
    if probe.sensor in per_sensor:
        per_sensor[probe.sensor] = statistics_for_level(
            probe.sensor, per_sensor[probe.sensor], probe.product_level
        )
    return per_sensor


def bigearthnet_probe_sets(sample_root: Path) -> List[ProbeSet]:
    """The BigEarthNet S2 (and S1) patches found anywhere under ``sample_root``.

    A patch is any folder holding a ``*_labels_metadata.json``; S2 patches hold ``*_B02.tif``, S1
    patches ``*_VV.tif``. Patches without a 19-class label are left out.
    """
    from ..data.raster import read_window
    from ..data.tasks.bigearthnet import (
        BIGEARTHNET19_CLASSES,
        _band_sources,
        _finest_grid,
        _read_metadata,
        bigearthnet19_indices,
        multi_hot,
    )

    found: Dict[str, Dict[str, Path]] = {"s2": {}, "sar": {}}
    for meta in sorted(Path(sample_root).rglob("*_labels_metadata.json")):
        folder = meta.parent
        if any(folder.glob("*_B02.tif")):
            found["s2"].setdefault(folder.name, folder)
        elif any(folder.glob("*_VV.tif")):
            found["sar"].setdefault(folder.name, folder)
    sets = []
    for sensor, folders in found.items():
        images, targets, names = [], [], []
        for name, folder in sorted(folders.items()):
            indices = bigearthnet19_indices(_read_metadata(folder).get("labels", []), name)
            if not indices:
                continue
            sources = _band_sources(sensor, folder)
            grid = _finest_grid(sources)
            images.append(read_window(sources, grid, 0, 0, grid.height, grid.width))
            targets.append(multi_hot(indices))
            names.append(name)
        if len(images) >= 4:
            sets.append(
                ProbeSet(
                    name=f"bigearthnet-{'s2' if sensor == 's2' else 's1'}",
                    sensor=sensor,
                    images=images,
                    targets=np.stack(targets).astype(np.float32),
                    patches=names,
                    class_names=list(BIGEARTHNET19_CLASSES),
                    # BigEarthNet-S2 is Sentinel-2 L2A; S1 GRD backscatter has no such levels.
                    product_level="L2A" if sensor == "s2" else None,
                )
            )
    sets += [vv_probe_set(p) for p in sets if p.sensor == "sar"]
    return sets


def vv_probe_set(sar: ProbeSet) -> ProbeSet:
    """The VV band of the Sentinel-1 patches as a ``sar_vv`` set: the sensor of the corpus'
    Sentinel-1 scenes (VV only, dB), so an encoder pretrained on them is probed on S1 too."""
    from ..sensors import get_sensor

    vv = get_sensor("sar").bands.index("VV")
    return dataclasses.replace(
        sar,
        name=f"{sar.name}-vv",
        sensor="sar_vv",
        images=[image[vv : vv + 1] for image in sar.images],
    )


def split_probe_set(probe: ProbeSet, part: str) -> ProbeSet:
    """The validation or final part of a probe set (``part="all"``: the set itself).

    Patches are ordered by a checksum of their name and dealt alternately to validation and
    final, so the parts are disjoint, half each, the same on every machine, and a patch keeps
    its part when others are added.
    """
    import zlib

    if part not in PARTS:
        raise ValueError(f"probe part must be one of {', '.join(PARTS)}, not {part!r}")
    if part == "all":
        return probe
    order = sorted(range(len(probe.patches)), key=lambda i: zlib.crc32(probe.patches[i].encode()))
    chosen = sorted(order[0::2] if part == "validation" else order[1::2])
    return ProbeSet(
        name=f"{probe.name}-{part}",
        sensor=probe.sensor,
        images=[probe.images[i] for i in chosen],
        targets=probe.targets[chosen],
        patches=[probe.patches[i] for i in chosen],
        class_names=probe.class_names,
        product_level=probe.product_level,
    )


# --- embedding a patch --------------------------------------------------------------------------


def tile_offsets(extent: int, tile: int) -> List[int]:
    """Offsets of tiles covering ``extent`` pixels: first and last flush with the edges."""
    if extent <= tile:
        return [0]
    count = math.ceil(extent / tile)
    return sorted({round(i * (extent - tile) / (count - 1)) for i in range(count)})


def tiles_of(image: np.ndarray, tile: int) -> np.ndarray:
    """``(T, C, tile, tile)`` tiles covering a normalised ``(C, H, W)`` image (reflect-padded if
    smaller than a tile)."""
    _, H, W = image.shape
    if tile > H or tile > W:
        pad = ((0, 0), (0, max(0, tile - H)), (0, max(0, tile - W)))
        image = np.pad(image, pad, mode="reflect")
        H, W = image.shape[1:]
    return np.stack(
        [
            image[:, r : r + tile, c : c + tile]
            for r in tile_offsets(H, tile)
            for c in tile_offsets(W, tile)
        ]
    )


# An embedder maps (sensor, normalised tiles (T, C, t, t)) to pooled tile embeddings (T, F).
Embedder = Callable[[str, np.ndarray], np.ndarray]


@dataclass
class EncoderUnderTest:
    """What the probe needs of an encoder: its embedder, tile size, normalisation and sensors."""

    label: str
    embed: Embedder
    tile_size: int
    normalization: Mapping[str, Any]
    sensors: Sequence[str]


def torch_encoder(encoder, config, normalization, label: str) -> EncoderUnderTest:
    """A torch :class:`~backend.models.encoder.MsGFMEncoder` as the exported embedding sees it."""
    import torch

    from ..models.embedding_head import embedding_stages, pooled_stage_features

    encoder.eval()
    stages = embedding_stages(config)

    def embed(sensor: str, tiles: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = encoder({sensor: torch.from_numpy(np.ascontiguousarray(tiles))})
            maps = pooled_stage_features(out.features, stages)
        return maps.mean(dim=(2, 3)).numpy().astype(np.float64)

    return EncoderUnderTest(label, embed, config.image_size, normalization, encoder.sensors)


def load_encoder(path: Path):
    """``(encoder, config, normalization)`` of a pretraining checkpoint folder or run folder."""
    from ..export.onnx_export import load_pretrained_encoder

    return load_pretrained_encoder(path)


def random_encoder(config, seed: int):
    """A randomly initialised encoder of ``config`` (seeded)."""
    import torch

    from ..models.encoder import MsGFMEncoder

    torch.manual_seed(seed)
    return MsGFMEncoder(config)


def onnx_encoder(path: Path) -> EncoderUnderTest:
    """An exported embedding model (``msgfm export`` of a pretraining checkpoint)."""
    import onnxruntime

    from ..export.schema import read_model_metadata

    metadata = read_model_metadata(path)
    if metadata.task != "embedding":
        raise ValueError(f"{path} is a {metadata.task!r} model, not an embedding model")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {spec.sensor: spec for spec in metadata.inputs}
    if len(inputs) != 1:
        raise ValueError(f"{path}: the probe takes single-sensor embedding models")
    ((sensor, spec),) = inputs.items()

    def embed(name: str, tiles: np.ndarray) -> np.ndarray:
        out = session.run(None, {spec.name: tiles.astype(np.float32)})[0]
        return out.mean(axis=(2, 3)).astype(np.float64)

    normalization = {sensor: {"mean": list(spec.mean), "std": list(spec.std)}}
    return EncoderUnderTest(path.name, embed, metadata.tile_size, normalization, [sensor])


def pooled_embeddings(model: EncoderUnderTest, probe: ProbeSet) -> Dict[str, np.ndarray]:
    """``{"patch": (N, F), "tiles": (N * T, F)}`` pooled embeddings of a probe set."""
    from ..data.tasks.normalization import normalize_inputs

    patch_vectors, tile_vectors = [], []
    for image in probe.images:
        normalised = normalize_inputs({probe.sensor: image}, model.normalization)[probe.sensor]
        vectors = model.embed(probe.sensor, tiles_of(normalised, model.tile_size))
        tile_vectors.append(vectors)
        patch_vectors.append(vectors.mean(axis=0))
    return {"patch": np.stack(patch_vectors), "tiles": np.concatenate(tile_vectors)}


def band_statistics(probe: ProbeSet, normalization: Mapping[str, Any]) -> np.ndarray:
    """Per-band mean and standard deviation of each normalised patch over its valid pixels."""
    from ..data.tasks.normalization import normalize_inputs

    rows = []
    for image in probe.images:
        valid = np.isfinite(image).all(axis=0)
        values = normalize_inputs({probe.sensor: image}, normalization)[probe.sensor][:, valid]
        rows.append(np.concatenate([values.mean(axis=1), values.std(axis=1)]))
    return np.stack(rows).astype(np.float64)


# --- probes -------------------------------------------------------------------------------------


def _standardise(train: np.ndarray, test: np.ndarray):
    # Per fold (leading axes): z-score with the training rows' statistics.
    mean = train.mean(axis=-2, keepdims=True)
    std = train.std(axis=-2, keepdims=True)
    std = np.where(std < 1e-8, 1.0, std)
    return (train - mean) / std, (test - mean) / std


def fit_logistic(X: np.ndarray, Y: np.ndarray, l2: np.ndarray, iterations: int = 300) -> np.ndarray:
    """One-vs-rest logistic regressions, many at once, by accelerated gradient descent (FISTA).

    The mean log-loss plus ``0.5 * l2 * |W|^2`` is convex and smooth; FISTA with step ``1/L`` (L
    its gradient's Lipschitz constant) converges fast enough for the probe's few hundred rows.

    Args:
        X: ``(B, N, F)`` standardised features of B independent problems (folds, weights).
        Y: ``(B, N, K)`` binary targets.
        l2: ``(B,)`` L2 weights (the bias is not penalised).

    Returns:
        ``(B, F + 1, K)`` weights, the last row the bias.
    """
    B, N, _ = X.shape
    Xb = np.concatenate([X, np.ones((B, N, 1))], axis=2)
    l2 = np.asarray(l2, dtype=np.float64).reshape(B, 1, 1)
    spectral = np.linalg.norm(Xb, ord=2, axis=(1, 2)).reshape(B, 1, 1)
    step = 1.0 / (spectral**2 / (4 * N) + l2)
    penalty = np.broadcast_to(l2, (B, Xb.shape[2], 1)).copy()
    penalty[:, -1] = 0.0
    W = np.zeros((B, Xb.shape[2], Y.shape[2]))
    V, t = W.copy(), 1.0
    XbT = Xb.transpose(0, 2, 1)
    for _ in range(iterations):
        P = 1.0 / (1.0 + np.exp(-np.clip(Xb @ V, -30, 30)))
        W_next = V - step * (XbT @ (P - Y) / N + penalty * V)
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        V = W_next + ((t - 1.0) / t_next) * (W_next - W)
        W, t = W_next, t_next
    return W


def _row_space(train: np.ndarray, test: np.ndarray):
    """Express standardised features in the training rows' span (per fold).

    With an L2 penalty the optimal weights lie in the span of the training rows (representer
    theorem), and the penalty is rotation invariant, so fitting on these at most N coordinates
    gives the same predictions as fitting on all F features, much faster when N << F.
    """
    if train.shape[-1] <= train.shape[-2]:
        return train, test
    _, _, Vt = np.linalg.svd(train, full_matrices=False)
    basis = Vt.transpose(0, 2, 1) if Vt.ndim == 3 else Vt.T
    return train @ basis, test @ basis


def _predict_logistic(W: np.ndarray, X: np.ndarray) -> np.ndarray:
    Xb = np.concatenate([X, np.ones((*X.shape[:-1], 1))], axis=-1)
    return 1.0 / (1.0 + np.exp(-np.clip(Xb @ W, -30, 30)))


def _leave_one_out(X: np.ndarray, Y: np.ndarray):
    """``(train X, train Y, test X)`` stacked over the N leave-one-out folds."""
    N = len(X)
    keep = ~np.eye(N, dtype=bool)
    index = np.stack([np.flatnonzero(row) for row in keep])
    return X[index], Y[index], X[:, None, :]


def _loo_logistic_scores(X: np.ndarray, Y: np.ndarray, l2: np.ndarray) -> np.ndarray:
    """Leave-one-out scores ``(len(l2), N, K)``: one LOO run per L2 weight, all fitted at once."""
    X_train, Y_train, X_test = _leave_one_out(X, Y)
    X_train, X_test = _row_space(*_standardise(X_train, X_test))
    folds, weights = len(X), len(l2)
    W = fit_logistic(
        np.tile(X_train, (weights, 1, 1)),
        np.tile(Y_train, (weights, 1, 1)),
        np.repeat(np.asarray(l2, dtype=np.float64), folds),
    )
    scores = _predict_logistic(W, np.tile(X_test, (weights, 1, 1)))[:, 0, :]
    return scores.reshape(weights, folds, -1)


def micro_map(Y: np.ndarray, scores: np.ndarray) -> float:
    """Micro-averaged mean average precision of ``scores`` (N, C) against multi-labels ``Y``."""
    return float(task_metrics.mean_average_precision(Y, scores, average="micro"))


def linear_probe_scores(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Leave-one-out scores of the linear probe; for each held-out row, the L2 weight is chosen
    by an inner leave-one-out (micro mAP) on the other rows only."""
    N = len(X)
    scores = np.zeros(Y.shape, dtype=np.float64)
    grid = np.asarray(L2_GRID)
    for i in range(N):
        train = np.arange(N) != i
        best = 0
        if train.sum() > 3:
            inner = _loo_logistic_scores(X[train], Y[train], grid)
            best = int(np.argmax([micro_map(Y[train], inner[j]) for j in range(len(grid))]))
        X_train, X_test = _row_space(*_standardise(X[train][None], X[i : i + 1][None]))
        W = fit_logistic(X_train, Y[train][None], grid[best : best + 1])
        scores[i] = _predict_logistic(W, X_test)[0, 0]
    return scores


def _loo_scores(X: np.ndarray, Y: np.ndarray, predict) -> np.ndarray:
    scores = np.zeros_like(Y, dtype=np.float64)
    for i in range(len(X)):
        train = np.arange(len(X)) != i
        scores[i] = predict(X[train], Y[train], X[i : i + 1])[0]
    return scores


def knn_probe_scores(X: np.ndarray, Y: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """Leave-one-out scores of a cosine k-NN probe (similarity-weighted label average)."""

    def predict(X_train, Y_train, X_test):
        Xa, Xb = _standardise(X_train, X_test)
        Xa = Xa / np.maximum(np.linalg.norm(Xa, axis=1, keepdims=True), 1e-12)
        Xb = Xb / np.maximum(np.linalg.norm(Xb, axis=1, keepdims=True), 1e-12)
        similarity = Xb @ Xa.T
        nearest = np.argsort(-similarity, axis=1)[:, : min(k, len(Xa))]
        weights = np.take_along_axis(similarity, nearest, axis=1).clip(min=0) + 1e-6
        return np.einsum("tk,tkc->tc", weights, Y_train[nearest]) / weights.sum(1, keepdims=True)

    return _loo_scores(X, Y, predict)


def effective_rank(X: np.ndarray) -> float:
    """RankMe (Garrido et al. 2023): ``exp(entropy(s / sum s))`` of the centred features'
    singular values ``s``; at most ``min(N, F)``."""
    X = X - X.mean(axis=0)
    s = np.linalg.svd(X, compute_uv=False)
    p = s / max(s.sum(), 1e-12) + 1e-12
    return float(np.exp(-(p * np.log(p)).sum()))


def first_component_share(X: np.ndarray) -> float:
    """Fraction of the centred features' variance on their first principal component."""
    X = X - X.mean(axis=0)
    s = np.linalg.svd(X, compute_uv=False) ** 2
    return float(s[0] / max(s.sum(), 1e-12))


def score_features(X: np.ndarray, Y: np.ndarray, tiles: Optional[np.ndarray] = None) -> Dict:
    """Linear and k-NN probe mAPs (micro, macro), effective rank and first-component share."""
    return scored_features(X, Y, tiles)[0]


def scored_features(X: np.ndarray, Y: np.ndarray, tiles: Optional[np.ndarray] = None) -> tuple:
    """:func:`score_features` and the held-out predictions ``{"linear", "knn"}`` it scored."""
    linear = linear_probe_scores(X, Y)
    knn = knn_probe_scores(X, Y)
    ranked = tiles if tiles is not None else X
    scores = {
        "linear_map_micro": micro_map(Y, linear),
        "linear_map_macro": float(task_metrics.mean_average_precision(Y, linear, "macro")),
        "knn_map_micro": micro_map(Y, knn),
        "knn_map_macro": float(task_metrics.mean_average_precision(Y, knn, "macro")),
        "effective_rank": effective_rank(ranked),
        "first_component_share": first_component_share(ranked),
        "features": int(X.shape[1]),
    }
    return scores, {"linear": linear, "knn": knn}


def prior_scores(Y: np.ndarray) -> np.ndarray:
    """Leave-one-out class-prior predictions: each patch gets the other patches' frequencies."""
    totals = Y.sum(axis=0, keepdims=True)
    return (totals - Y) / max(len(Y) - 1, 1)


def permutation_baseline(
    X: np.ndarray, Y: np.ndarray, permutations: int = PERMUTATIONS, seed: int = 0
) -> Dict[str, float]:
    """Both probes on ``X`` with the label rows shuffled across patches (``permutations`` times):
    their mean micro mAP and its spread, the score of features that carry nothing of the labels."""
    rng = np.random.default_rng(seed)
    linear, knn = [], []
    for _ in range(permutations):
        shuffled = Y[rng.permutation(len(Y))]
        linear.append(micro_map(shuffled, linear_probe_scores(X, shuffled)))
        knn.append(micro_map(shuffled, knn_probe_scores(X, shuffled)))
    return {
        "linear_map_micro": float(np.mean(linear)),
        "linear_map_micro_sd": float(np.std(linear, ddof=1)) if permutations > 1 else None,
        "knn_map_micro": float(np.mean(knn)),
        "knn_map_micro_sd": float(np.std(knn, ddof=1)) if permutations > 1 else None,
        "permutations": int(permutations),
    }


def bootstrap_standard_errors(
    Y: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    margins: Mapping[str, tuple] = (),
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> Dict[str, float]:
    """Standard errors of micro mAPs and of their differences, by a bootstrap over patches.

    Args:
        Y: ``(N, K)`` labels.
        predictions: ``{name: (N, K) held-out scores}``: the standard error of each one's micro
            mAP is ``<name>_se``.
        margins: ``{name: (first, [seconds])}`` of prediction names: the margin is the first's
            micro mAP minus the mean of the seconds', drawn on the same patches; its standard
            error is ``<name>_se``.
        draws: Bootstrap draws.
        seed: Seed of the draws.
    """
    rng = np.random.default_rng(seed)
    values: Dict[str, List[float]] = {name: [] for name in predictions}
    margin_values: Dict[str, List[float]] = {name: [] for name in dict(margins)}
    for _ in range(draws):
        rows = rng.integers(len(Y), size=len(Y))
        if Y[rows].sum() == 0:
            continue  # no positive label drawn: mAP undefined
        drawn = {name: micro_map(Y[rows], p[rows]) for name, p in predictions.items()}
        for name, score in drawn.items():
            values[name].append(score)
        for name, (first, seconds) in dict(margins).items():
            margin_values[name].append(drawn[first] - float(np.mean([drawn[s] for s in seconds])))
    out = {}
    for name, series in {**values, **margin_values}.items():
        out[f"{name}_se"] = float(np.nanstd(series, ddof=1)) if len(series) > 1 else None
    return out


# --- the whole probe ----------------------------------------------------------------------------


def probe_encoder(
    encoder_path: Path,
    sample_root: Path,
    random_seeds: int = 3,
    band_stats: bool = True,
    probe_sets: Optional[List[ProbeSet]] = None,
    part: str = "all",
    permutations: int = PERMUTATIONS,
    draws: int = BOOTSTRAP_DRAWS,
) -> Dict[str, Any]:
    """Probe an encoder (checkpoint or ONNX) beside random-init encoders and band statistics.

    Args:
        part: ``all`` patches, or the ``validation`` part (selection) or ``final`` part (the
            report) of each set (:func:`split_probe_set`).
        permutations: Label shuffles of the permutation baseline (0: none).
        draws: Bootstrap draws of the standard errors.

    Returns:
        ``{"encoder", "part", "sets": {set name: {"n_patches", "patches", "encoder": scores,
        "random_init": [scores per seed], "random_init_mean": ..., "band_statistics": scores,
        "class_prior": {"map_micro", "map_macro"}, "permutation": ..., "standard_errors":
        {...}, "margin_over_random", "margin_over_band_statistics", "margin_over_prior"}},
        "not_probed": {set name: reason}}``. Margins are in linear micro mAP.
    """
    encoder_path = Path(encoder_path)
    config = None
    if encoder_path.suffix.lower() == ".onnx":
        model = onnx_encoder(encoder_path)
        from ..export.schema import read_model_metadata

        extra = read_model_metadata(encoder_path).extra or {}
        if isinstance(extra.get("model_config"), dict):
            from ..models.config import ModelConfig

            config = ModelConfig.from_dict(extra["model_config"])
    else:
        encoder, config, normalization = load_encoder(encoder_path)
        model = torch_encoder(encoder, config, normalization, encoder_path.name)
    sets = probe_sets if probe_sets is not None else bigearthnet_probe_sets(sample_root)
    report: Dict[str, Any] = {
        "encoder": str(encoder_path),
        "part": part,
        "sets": {},
        "not_probed": {},
    }
    statistics = model.normalization.get("sensors", model.normalization)
    for whole in sets:
        probe = split_probe_set(whole, part)
        if probe.sensor not in model.sensors:
            continue
        if probe.sensor not in statistics:
            report["not_probed"][probe.name] = (
                f"the encoder's checkpoint has no {probe.sensor!r} statistics: it was not "
                f"pretrained on {probe.sensor!r} (an untrained patch embedding is not probed)"
            )
            continue
        report["sets"][probe.name] = _probe_one_set(
            model, config, probe, random_seeds, band_stats, permutations, draws
        )
    return report


def _probe_one_set(
    model: EncoderUnderTest,
    config: Any,
    probe: ProbeSet,
    random_seeds: int,
    band_stats: bool,
    permutations: int,
    draws: int,
) -> Dict[str, Any]:
    Y = probe.targets
    model = dataclasses.replace(model, normalization=normalization_for(model.normalization, probe))
    emb = pooled_embeddings(model, probe)
    scores, predicted = scored_features(emb["patch"], Y, emb["tiles"])
    prior = prior_scores(Y)
    entry: Dict[str, Any] = {
        "n_patches": len(probe.images),
        "patches": list(probe.patches),
        "encoder": scores,
        "class_prior": {
            "map_micro": micro_map(Y, prior),
            "map_macro": float(task_metrics.mean_average_precision(Y, prior, "macro")),
        },
    }
    linear = {"encoder": predicted["linear"], "prior": prior}
    knn = {"encoder_knn": predicted["knn"]}
    margins: Dict[str, tuple] = {"margin_over_prior": ("encoder", ["prior"])}
    if config is not None and random_seeds > 0:
        runs = []
        for seed in range(random_seeds):
            random_model = torch_encoder(
                random_encoder(config, seed), config, model.normalization, f"random-{seed}"
            )
            random_emb = pooled_embeddings(random_model, probe)
            run, run_predicted = scored_features(random_emb["patch"], Y, random_emb["tiles"])
            runs.append(run)
            linear[f"random_init_{seed}"] = run_predicted["linear"]
        entry["random_init"] = runs
        entry["random_init_mean"] = {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}
        entry["margin_over_random"] = (
            entry["encoder"]["linear_map_micro"] - entry["random_init_mean"]["linear_map_micro"]
        )
        margins["margin_over_random"] = ("encoder", [f"random_init_{s}" for s in range(len(runs))])
    if band_stats:
        features = band_statistics(probe, model.normalization)
        entry["band_statistics"], band_predicted = scored_features(features, Y)
        linear["band_statistics"] = band_predicted["linear"]
        entry["margin_over_band_statistics"] = (
            entry["encoder"]["linear_map_micro"] - entry["band_statistics"]["linear_map_micro"]
        )
        margins["margin_over_band_statistics"] = ("encoder", ["band_statistics"])
    entry["margin_over_prior"] = (
        entry["encoder"]["linear_map_micro"] - entry["class_prior"]["map_micro"]
    )
    if permutations > 0:
        entry["permutation"] = permutation_baseline(emb["patch"], Y, permutations)
    # The held-out linear predictions per patch, so that margins can be bootstrapped over the
    # same patches across several encoders (pretraining seeds) later.
    entry["predictions"] = {name: np.asarray(p).round(6).tolist() for name, p in linear.items()}
    entry["targets"] = Y.astype(int).tolist()
    entry["standard_errors"] = bootstrap_standard_errors(Y, {**linear, **knn}, margins, draws=draws)
    entry["standard_errors"]["method"] = (
        f"bootstrap over patches of the held-out predictions ({draws} draws; margins paired)"
    )
    return entry


def format_report(report: Mapping[str, Any]) -> str:
    """A plain-text table of a probe report."""
    lines = [f"probe of {report['encoder']} ({report.get('part', 'all')} patches)"]
    header = f"  {'features':<22}{'lin µmAP':>9}{'lin MmAP':>9}{'kNN µmAP':>9}{'rank':>7}{'PC1':>6}"
    for name, entry in report["sets"].items():
        lines += [f"{name} ({entry['n_patches']} patches, leave-one-patch-out)", header]

        def row(label, s):
            return (
                f"  {label:<22}{s['linear_map_micro']:>9.3f}{s['linear_map_macro']:>9.3f}"
                f"{s['knn_map_micro']:>9.3f}{s['effective_rank']:>7.1f}"
                f"{s['first_component_share']:>6.2f}"
            )

        errors = entry.get("standard_errors", {})

        def se(name, errors=errors):
            value = errors.get(f"{name}_se")
            return "" if value is None else f" ± {value:.3f}"

        lines.append(row("encoder", entry["encoder"]) + f"   (lin µmAP{se('encoder')})")
        for seed, scores in enumerate(entry.get("random_init", [])):
            lines.append(row(f"random init seed {seed}", scores))
        if "random_init_mean" in entry:
            lines.append(row("random init mean", entry["random_init_mean"]))
        if "band_statistics" in entry:
            lines.append(row("band statistics", entry["band_statistics"]))
        if "class_prior" in entry:
            lines.append(
                f"  class prior: µmAP {entry['class_prior']['map_micro']:.3f}{se('prior')}, "
                f"MmAP {entry['class_prior']['map_macro']:.3f}"
            )
        if "permutation" in entry:
            shuffled = entry["permutation"]
            lines.append(
                f"  labels permuted ({shuffled['permutations']}x): lin µmAP "
                f"{shuffled['linear_map_micro']:.3f}, kNN µmAP {shuffled['knn_map_micro']:.3f}"
            )
        for name, label in (
            ("margin_over_random", "random init"),
            ("margin_over_band_statistics", "band statistics"),
            ("margin_over_prior", "class prior"),
        ):
            if name in entry:
                lines.append(
                    f"  margin over {label} (linear µmAP): {entry[name]:+.3f}{se(name)} (standard "
                    "error, bootstrap over patches)"
                )
    for name, reason in report.get("not_probed", {}).items():
        lines.append(f"{name}: not probed: {reason}")
    return "\n".join(lines)


def run_probe_command(args) -> int:
    """Handler of ``msgfm probe``."""
    import sys

    from ..data.fetch import sample_data_root

    try:
        report = probe_encoder(
            Path(args.encoder),
            Path(args.data) if args.data else sample_data_root(),
            random_seeds=args.random_seeds,
            part=getattr(args, "part", "all"),
        )
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"msgfm probe: {exc}", file=sys.stderr)
        return 2
    if not report["sets"]:
        print(
            "msgfm probe: no labelled patches of this encoder's sensors were found", file=sys.stderr
        )
        return 2
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report) if args.json else format_report(report))
    return 0
