"""Scoring task models on held-back tiles: ``msgfm evaluate`` and the finetuning validation.

A model is a finetuning checkpoint (run through torch) or an exported ``.onnx`` file (run through
ONNX Runtime with :mod:`backend.inference`, numpy only). Both are wrapped as a *predictor*: a
function from a batch of raw task samples to the task's scores, in one space for both:

* classification: class probabilities ``(B, K)`` (sigmoid for multi-label, softmax otherwise);
* segmentation: class probabilities ``(B, K, H, W)``;
* cloud removal, pan-sharpening: the restored image in the target sensor's units ``(B, C, H, W)``.

:class:`TaskScorer` turns predictions and references into the metrics of :mod:`backend.scores`
(classification: mAP micro/macro and F1, or OA and F1 for single-label; segmentation: OA, mIoU and
per-class IoU; restoration: MAE, RMSE, PSNR, SSIM, SAM and, for pan-sharpening, ERGAS), averaged
per tile for restoration. Each evaluation also scores the task's trivial baseline on the same
tiles: the training split's class prior (classification), its majority class (segmentation), the
cloudy input itself (cloud removal) and the bicubic-upsampled MS (pan-sharpening).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from .. import scores as task_metrics
from ..conventions import IGNORE_INDEX
from ..tasks import get_task

# What ``--split`` may score: test (reported), val (chosen on), train, all.
SPLIT_PARTS = ("test", "val", "train", "all")

Predictor = Callable[[List[Mapping[str, Any]]], np.ndarray]


def default_monitor(task: str, multilabel: bool) -> tuple:
    """The validation score that picks the best checkpoint: ``(name, "max" | "min")``."""
    return get_task(task).monitor(multilabel)


class TaskScorer:
    """Accumulates predictions of one task and scores them with :mod:`backend.scores`.

    Args:
        task: The task name.
        num_classes: Classes (classification, segmentation).
        multilabel: Multi-label scene classification.
        class_names: Names for the per-class IoU keys.
        data_range: PSNR/SSIM range (restoration; default: the task's ``data_range``).
        ratio: ERGAS resolution ratio (default: the task's ``ergas_ratio``).
    """

    def __init__(
        self,
        task: str,
        num_classes: Optional[int] = None,
        multilabel: bool = False,
        class_names: Optional[Sequence[str]] = None,
        data_range: Optional[float] = None,
        ratio: Optional[float] = None,
    ):
        self.task = task
        self.task_type = get_task(task)
        self.num_classes = num_classes
        self.multilabel = multilabel
        self.class_names = list(class_names) if class_names else None
        self.data_range = float(data_range or self.task_type.data_range)
        self.ratio = ratio if ratio is not None else self.task_type.ergas_ratio
        self._scores: List[np.ndarray] = []
        self._targets: List[np.ndarray] = []
        self._tile_scores: List[Dict[str, float]] = []
        # Position (in the order added) of every scored sample, for per-sample records.
        self._positions: List[int] = []
        self._added = 0

    def add(self, predictions: np.ndarray, samples: Sequence[Mapping[str, Any]]) -> None:
        """Add a batch: ``predictions`` as the module docstring says, one raw sample per row."""
        predictions = np.asarray(predictions)
        if len(predictions) != len(samples):
            raise ValueError(f"{len(predictions)} predictions for {len(samples)} samples")
        first = self._added
        self._added += len(samples)
        if self.task_type.scene_level or self.task_type.has_classes:
            self._positions += list(range(first, first + len(samples)))
        if self.task_type.scene_level:
            self._scores.append(predictions.reshape(len(samples), -1).astype(np.float64))
            self._targets.append(np.stack([np.asarray(s["target"]) for s in samples]))
        elif self.task_type.has_classes:
            self._scores.append(np.argmax(predictions, axis=1).astype(np.int64))
            self._targets.append(np.stack([np.asarray(s["target"]) for s in samples]))
        else:
            for position, (prediction, sample) in enumerate(zip(predictions, samples), first):
                reference = np.asarray(sample["target"], dtype=np.float64)
                valid = np.isfinite(reference).all(axis=0)
                if "valid" in sample:
                    valid &= np.asarray(sample["valid"], dtype=bool)
                if not valid.any():
                    continue
                self._positions.append(position)
                self._tile_scores.append(
                    task_metrics.restoration_metrics(
                        np.where(valid, prediction, 0.0),
                        np.where(valid, reference, 0.0),
                        self.data_range,
                        ratio=self.ratio,
                        valid=valid,
                    )
                )

    def per_sample(self) -> tuple:
        """What each scored sample contributes to the scores (:mod:`backend.train.paired`).

        Returns:
            ``(kind, values, targets, positions)``: ``kind`` is ``scene`` (values: class scores,
            targets: references), ``confusion`` (values: each tile's flattened confusion
            matrix) or ``tile`` (values: each tile's metrics); ``positions`` are the scored
            samples' positions in the order they were added.
        """
        if self.task_type.scene_level:
            scores = np.concatenate(self._scores) if self._scores else np.zeros((0, 0))
            targets = np.concatenate(self._targets) if self._targets else np.zeros((0,))
            return "scene", list(scores), list(targets), list(self._positions)
        if self.task_type.has_classes:
            k = int(self.num_classes)
            matrices = [
                task_metrics.confusion_matrix(p, t, k, ignore_index=IGNORE_INDEX).reshape(-1)
                for batch, refs in zip(self._scores, self._targets)
                for p, t in zip(batch, refs)
            ]
            return "confusion", matrices, None, list(self._positions)
        tiles = [{k: v for k, v in t.items() if k != "n_pixels"} for t in self._tile_scores]
        return "tile", tiles, None, list(self._positions)

    def result(self) -> Dict[str, float]:
        """The scores of everything added, with ``n_samples``."""
        if self.task_type.scene_level:
            if not self._scores:
                raise ValueError("no samples were scored")
            scores = np.concatenate(self._scores)
            targets = np.concatenate(self._targets)
            if not self.multilabel:
                targets = targets.astype(np.int64).reshape(-1)
            return task_metrics.classification_metrics(targets, scores, self.multilabel)
        if self.task_type.has_classes:
            if not self._scores:
                raise ValueError("no samples were scored")
            scores = task_metrics.segmentation_metrics(
                np.concatenate(self._scores),
                np.concatenate(self._targets),
                int(self.num_classes),
                ignore_index=IGNORE_INDEX,
                class_names=self.class_names,
            )
            scores["n_samples"] = float(sum(len(s) for s in self._scores))
            return scores
        if not self._tile_scores:
            raise ValueError("no tile had a valid reference pixel to score")
        keys = self._tile_scores[0].keys()
        scores = {
            key: float(np.nanmean([t[key] for t in self._tile_scores]))
            for key in keys
            if key != "n_pixels"
        }
        scores["n_pixels"] = float(sum(t["n_pixels"] for t in self._tile_scores))
        scores["n_samples"] = float(len(self._tile_scores))
        return scores


# --- predictors ---------------------------------------------------------------------------------


def normalize_for_model(
    inputs: Mapping[str, np.ndarray], specs: Mapping[str, Any]
) -> Dict[str, np.ndarray]:
    """Normalise one sample's raw inputs as the inference engine does (nodata pixels -> 0).

    Args:
        inputs: ``{sensor: (C, H, W) raw}``.
        specs: ``{sensor: InputSpec}`` (mean, std, normalization).
    """
    from ..inference.preprocessing import normalize_mean_std, normalize_per_tile

    out = {}
    for sensor, spec in specs.items():
        if sensor not in inputs:
            raise KeyError(f"the model needs a {sensor!r} input; the data has {sorted(inputs)}")
        values = np.asarray(inputs[sensor], dtype=np.float32)
        valid = np.isfinite(values).all(axis=0)
        values = np.where(np.isfinite(values), values, 0.0).astype(np.float32)
        if spec.normalization == "per_tile":
            out[sensor] = normalize_per_tile(values, valid)
        else:
            out[sensor] = normalize_mean_std(values, valid, spec)
    return out


def input_specs_from_meta(meta: Mapping[str, Any]) -> Dict[str, Any]:
    """``{sensor: InputSpec}`` of a finetuning checkpoint's inputs from its ``normalization``."""
    from ..data.tasks.normalization import missing_statistics_error
    from ..export.schema import InputSpec
    from ..sensors import get_sensor

    specs = {}
    for sensor in meta["task_spec"]["sensors"]:
        entry = get_sensor(sensor)
        if sensor not in meta["normalization"]:
            # Registry defaults would score other inputs than the model was finetuned on.
            raise missing_statistics_error(sensor, meta["normalization"])
        stats = meta["normalization"][sensor]
        specs[sensor] = InputSpec(
            name=sensor,
            sensor=sensor,
            bands=list(entry.bands),
            mean=[float(v) for v in stats["mean"]],
            std=[float(v) for v in stats["std"]],
            normalization=entry.normalization,
        )
    return specs


def checkpoint_predictor(checkpoint: str) -> tuple:
    """A torch predictor of a finetuning checkpoint.

    Returns:
        ``(predictor, meta)``.
    """
    import torch
    from safetensors.torch import load_model

    from ..checkpoints import BEST, META_FILE, WEIGHTS_FILE, resolve_checkpoint
    from ..models.config import ModelConfig
    from ..models.tasks import TaskSpec, build_task_model

    # A run folder means its best checkpoint (what early stopping kept), else its last one.
    best = Path(checkpoint) / BEST
    folder = resolve_checkpoint(best if best.is_dir() else checkpoint)
    if folder is None:
        raise FileNotFoundError(
            f"--model {checkpoint}: no {WEIGHTS_FILE} + {META_FILE} there (or in its "
            "checkpoint-best/checkpoint-last); give a finetuning checkpoint folder or an .onnx file"
        )
    meta = json.loads((folder / META_FILE).read_text())
    if meta.get("task") not in ("classification", "segmentation", "cloud-removal", "pansharpening"):
        raise ValueError(
            f"--model {folder} is a {meta.get('task')!r} checkpoint, not a finetuned task model"
        )
    spec = TaskSpec.from_dict(meta["task_spec"])
    model = build_task_model(ModelConfig.from_dict(meta["model_config"]), spec)
    load_model(model, str(folder / WEIGHTS_FILE), strict=True)
    model.eval()
    specs = input_specs_from_meta(meta)
    target = spec.target_sensor
    target_stats = meta["normalization"].get(target, {}) if target else {}

    def predict(samples: List[Mapping[str, Any]]) -> np.ndarray:
        normalised = [normalize_for_model(s["inputs"], specs) for s in samples]
        batch = {k: torch.from_numpy(np.stack([n[k] for n in normalised])) for k in specs}
        with torch.no_grad():
            output = model(batch)
        return scores_from_output(spec.task, spec.multilabel, output.numpy(), target_stats)

    return predict, meta


def scores_from_output(
    task: str, multilabel: bool, output: np.ndarray, target_stats: Mapping[str, Any]
) -> np.ndarray:
    """Probabilities from logits, or the target sensor's units from normalised values."""
    return get_task(task).scores_from_output(multilabel, output, target_stats)


def onnx_predictor(path: str, device: str = "cpu") -> tuple:
    """An ONNX Runtime predictor of an exported task model (numpy only).

    Returns:
        ``(predictor, metadata)``; probabilities and reflectances come out as the model's metadata
        says (reflectance ``raw * scale + offset`` per band).
    """
    from ..export.schema import read_model_metadata
    from ..inference.session import create_session

    metadata = read_model_metadata(path)
    session, _ = create_session(path, device=device)
    specs = {spec.sensor: spec for spec in metadata.inputs}
    names = {spec.sensor: spec.name for spec in metadata.inputs}
    # Classification models also give a "class" output; score the probabilities (or image).
    output = next(
        (o for o in metadata.outputs if o.kind in ("probability", "reflectance")),
        metadata.outputs[0],
    )

    def predict(samples: List[Mapping[str, Any]]) -> np.ndarray:
        normalised = [normalize_for_model(s["inputs"], specs) for s in samples]
        feed = {names[k]: np.stack([n[k] for n in normalised]) for k in specs}
        values = session.run([output.name], feed)[0].astype(np.float64)
        if output.kind == "reflectance":
            scale = np.asarray(output.scale or [1.0] * values.shape[1]).reshape(1, -1, 1, 1)
            offset = np.asarray(output.offset or [0.0] * values.shape[1]).reshape(1, -1, 1, 1)
            values = values * scale + offset
        elif get_task(metadata.task).scene_level:
            values = values.reshape(values.shape[0], -1)
        return values

    return predict, metadata


# --- evaluation ---------------------------------------------------------------------------------


def baseline_predictions(
    task: str, samples: Sequence[Mapping[str, Any]], prior: Optional[np.ndarray]
) -> np.ndarray:
    """The trivial baseline's predictions for a batch (see the module docstring)."""
    return get_task(task).baseline_predictions(samples, prior)


def class_prior(train: Any, task: str, num_classes: int, multilabel: bool) -> np.ndarray:
    """Class frequencies of the training samples (scenes, or pixels for segmentation)."""
    dataset = getattr(train, "dataset", train)
    indices = getattr(train, "indices", range(len(train)))
    counts = np.zeros(num_classes, dtype=np.float64)
    for index in indices:
        if not get_task(task).scene_level and hasattr(dataset, "seen_labels"):
            labels = dataset.seen_labels(index)
        elif hasattr(dataset, "target"):
            labels = dataset.target(index)
        else:
            labels = dataset[index]["target"]
        labels = np.asarray(labels)
        if multilabel:
            counts += labels.astype(np.float64)
        else:
            labels = labels[(labels >= 0) & (labels != IGNORE_INDEX)]
            counts += np.bincount(labels.reshape(-1).astype(np.int64), minlength=num_classes)
    total = counts.sum() if not multilabel else max(len(indices), 1)
    return counts / max(total, 1.0)


def evaluate_predictor(
    predictor: Predictor,
    held_back: Any,
    task: str,
    num_classes: Optional[int] = None,
    multilabel: bool = False,
    class_names: Optional[Sequence[str]] = None,
    prior: Optional[np.ndarray] = None,
    batch_size: int = 8,
    progress: Optional[Callable[[float, str], None]] = None,
    data_range: Optional[float] = None,
    ratio: Optional[float] = None,
    ids: Optional[Sequence[int]] = None,
    units: Optional[Sequence[Any]] = None,
) -> Dict[str, Any]:
    """Score a predictor and the task's baseline on the held-back samples.

    ``data_range`` and ``ratio`` (PSNR/SSIM peak and ERGAS pan:MS ratio) default to
    the task's ``data_range`` and ``ergas_ratio`` (:mod:`backend.tasks`). ``ids`` (the samples'
    indexes in their dataset) and ``units`` (their holdout units, for resampling blocks) label
    the per-sample record; by default samples are numbered in order and each is its own block.

    Returns:
        ``{"task", "n_samples", "metrics": {...}, "baseline": {"name", "metrics"},
        "per_sample": {...}}``; ``per_sample`` is the record the paired bootstrap of
        :mod:`backend.train.paired` compares models with.
    """
    scorer = TaskScorer(task, num_classes, multilabel, class_names, data_range, ratio)
    baseline = TaskScorer(task, num_classes, multilabel, class_names, data_range, ratio)
    comparison = (
        ClassComparison(int(num_classes))
        if get_task(task).has_classes and not multilabel and num_classes
        else None
    )
    total = len(held_back)
    if total == 0:
        raise ValueError("there are no held-back samples to evaluate on")
    for start in range(0, total, batch_size):
        samples = [held_back[i] for i in range(start, min(start + batch_size, total))]
        predictions = predictor(samples)
        scorer.add(predictions, samples)
        base = baseline_predictions(task, samples, prior)
        baseline.add(base, samples)
        if comparison is not None:
            comparison.add(predictions, base, samples)
        if progress is not None:
            progress(min(start + batch_size, total) / total, f"scored {start + len(samples)}")
    report = {
        "task": task,
        "n_samples": total,
        "metrics": scorer.result(),
        "baseline": {"name": BASELINE_NAMES[task], "metrics": baseline.result()},
        "per_sample": _per_sample_record(scorer, baseline, ids, units, multilabel, num_classes),
    }
    if comparison is not None:
        report["comparison"] = comparison.result()
    return report


def _per_sample_record(
    scorer: TaskScorer,
    baseline: TaskScorer,
    ids: Optional[Sequence[int]],
    units: Optional[Sequence[Any]],
    multilabel: bool,
    num_classes: Optional[int],
) -> Dict[str, Any]:
    from .paired import per_sample_record, sample_block

    kind, model_values, targets, positions = scorer.per_sample()
    _, base_values, _, base_positions = baseline.per_sample()
    if positions != base_positions:
        raise ValueError("the model and its baseline were scored on different samples")
    labels = list(ids) if ids is not None else list(range(scorer._added))
    blocks = [sample_block(u) for u in units] if units is not None else [str(i) for i in labels]
    return per_sample_record(
        kind,
        model_values,
        base_values,
        [labels[p] for p in positions],
        [blocks[p] for p in positions],
        targets=targets,
        multilabel=multilabel,
        num_classes=num_classes,
    )


class ClassComparison:
    """The model against the baselines with bootstrap intervals over spatial blocks.

    Besides the training prior (or training majority class), the *evaluated* split's own majority
    class is a baseline: a model that cannot beat always answering the commonest class of the
    tiles it is scored on has learned nothing a user can use. Tiles cut with a stride below their
    size overlap, so they are not independent: the bootstrap resamples blocks of ground
    (2 x 2 tiles, by each sample's ``row``/``col``; one block per sample without them).
    """

    def __init__(self, num_classes: int, draws: int = 1000, seed: int = 0):
        self.k = num_classes
        self.draws = draws
        self.seed = seed
        self.model: List[np.ndarray] = []
        self.baseline: List[np.ndarray] = []
        self.labels: List[np.ndarray] = []
        self.blocks: List[tuple] = []

    def _confusion(self, labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        keep = (labels >= 0) & (labels < self.k)
        index = labels[keep] * self.k + predicted[keep]
        return np.bincount(index, minlength=self.k * self.k).reshape(self.k, self.k)

    def add(self, predictions: np.ndarray, base: np.ndarray, samples) -> None:
        for prediction, baseline, sample in zip(predictions, base, samples):
            labels = np.asarray(sample["target"]).astype(np.int64).reshape(-1)
            # Scores (K,) of a scene or (K, H, W) of a tile: the class axis is first.
            model_class = np.argmax(prediction, axis=0).reshape(-1)
            base_class = np.argmax(baseline, axis=0).reshape(-1)
            if model_class.size == 1 and labels.size > 1:
                model_class = np.repeat(model_class, labels.size)
                base_class = np.repeat(base_class, labels.size)
            labelled = labels[(labels >= 0) & (labels < self.k)]
            self.labels.append(np.bincount(labelled, minlength=self.k))
            self.model.append(self._confusion(labels, model_class))
            self.baseline.append(self._confusion(labels, base_class))
            size = max(int(np.shape(next(iter(sample["inputs"].values())))[-1]), 1)
            if "row" in sample and "col" in sample:
                block = (int(sample["row"]) // (2 * size), int(sample["col"]) // (2 * size))
            else:
                block = ("sample", len(self.blocks))
            self.blocks.append(block)

    @staticmethod
    def _scores(confusion: np.ndarray) -> tuple:
        total = confusion.sum()
        accuracy = np.trace(confusion) / total if total else np.nan
        truth, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
        present = truth > 0
        f1 = 2 * np.diag(confusion) / np.maximum(truth + predicted, 1)
        return accuracy, float(f1[present].mean()) if present.any() else np.nan

    def result(self) -> Dict[str, Any]:
        model = np.stack(self.model)
        baseline = np.stack(self.baseline)
        counts = np.stack(self.labels)
        majority = int(np.argmax(counts.sum(axis=0)))
        # Majority of the evaluated split: every labelled value predicted as `majority`.
        majority_conf = np.zeros_like(model)
        majority_conf[:, :, majority] = counts
        names = sorted(set(self.blocks), key=str)
        block_of = np.array([names.index(b) for b in self.blocks])
        rng = np.random.default_rng(self.seed)
        arms = {"model": model, "baseline": baseline, "split_majority": majority_conf}
        point = {name: self._scores(arm.sum(axis=0)) for name, arm in arms.items()}
        differences: Dict[str, List[Any]] = {
            "model_minus_baseline": [],
            "model_minus_split_majority": [],
        }
        for _ in range(self.draws):
            chosen = rng.integers(len(names), size=len(names))
            weights = np.bincount(chosen, minlength=len(names))[block_of]
            scores = {
                name: self._scores(np.tensordot(weights, arm, axes=1)) for name, arm in arms.items()
            }
            for other in ("baseline", "split_majority"):
                differences[f"model_minus_{other}"].append(
                    np.subtract(scores["model"], scores[other])
                )
        intervals = {}
        for key, values in differences.items():
            values = np.asarray(values, dtype=np.float64)
            low = np.nanpercentile(values, 2.5, axis=0)
            high = np.nanpercentile(values, 97.5, axis=0)
            intervals[key] = {
                "overall_accuracy": [float(low[0]), float(high[0])],
                "f1_macro": [float(low[1]), float(high[1])],
            }
        return {
            "split_majority_class": majority,
            "scores": {
                name: {"overall_accuracy": float(v[0]), "f1_macro": float(v[1])}
                for name, v in point.items()
            },
            "intervals_95": intervals,
            "n_blocks": len(names),
            "method": "bootstrap over blocks of 2 x 2 tiles (1000 draws), percentile interval",
        }


BASELINE_NAMES = {
    "classification": "class prior of the training split",
    "segmentation": "majority class of the training split",
    "cloud-removal": "the cloudy input itself",
    "pansharpening": "bicubic-upsampled MS",
}


def evaluate_model(
    model: str,
    data: Optional[str] = None,
    data_root: Optional[str] = None,
    task: Optional[str] = None,
    val_fraction: Optional[float] = None,
    split_seed: Optional[int] = None,
    split_part: str = "test",
    batch_size: int = 8,
    device: str = "cpu",
    test_fraction: Optional[float] = None,
    split_fold: Optional[int] = None,
) -> Dict[str, Any]:
    """Evaluate a checkpoint or ONNX model on held-back tiles of a data spec.

    For a checkpoint the data spec, fractions, split seed and fold default to the ones it was
    finetuned with (stored in its ``meta.json``), so the same split is made again. Reported scores
    are on ``test`` (the default), which neither training nor the choice of checkpoint saw;
    ``val`` is the part early stopping and ``checkpoint-best`` were chosen on.

    Returns:
        The :func:`evaluate_predictor` report plus ``model``, ``model_kind``, ``data``,
        ``split``, ``n_train``, ``n_val``, ``n_test`` and the model's input ``sensors``.
    """
    from ..data.tasks import split
    from ..data.tasks.views import TileSizedDataset
    from .data_spec import build_dataset, load_data_spec

    training: Dict[str, Any] = {}
    if str(model).lower().endswith(".onnx"):
        if not Path(model).is_file():
            raise FileNotFoundError(f"--model {model} does not exist")
        predictor, metadata = onnx_predictor(model, device)
        model_task = metadata.task
        first = metadata.outputs[0]
        num_classes = len(first.classes) or None
        class_names = [c.name for c in first.classes]
        multilabel = any(o.multilabel for o in metadata.outputs)
        tile_size = metadata.tile_size
        sensors = [spec.sensor for spec in metadata.inputs]
        init_record = None  # an ONNX file does not say which encoder it started from
        kind = "onnx"
    else:
        predictor, meta = checkpoint_predictor(model)
        spec = meta["task_spec"]
        model_task, num_classes = spec["task"], spec["num_classes"]
        class_names, multilabel = spec["class_names"], spec["multilabel"]
        tile_size = spec["image_size"]
        sensors = list(spec["sensors"])
        training = meta.get("data", {})
        init_record = meta.get("init")
        kind = "checkpoint"
    if task is not None and task != model_task:
        raise ValueError(f"--task {task} but the model {model} is a {model_task} model")
    if data is None:
        if "spec" not in training:
            raise ValueError("give --data: an ONNX model does not record its training data")
        data_spec = training["spec"]
    else:
        data_spec = load_data_spec(data)
    if data_root is None:
        data_root = training.get("data_root")
    fraction = val_fraction if val_fraction is not None else training.get("val_fraction", 0.2)
    seed = split_seed if split_seed is not None else training.get("split_seed", 0)
    if test_fraction is None:
        test_fraction = float(training.get("test_fraction") or 0.0)
    if split_fold is None:
        split_fold = training.get("split_fold")
    dataset = build_dataset(data_spec, model_task, data_root)
    train, held, test = split(dataset, fraction, seed, test_fraction=test_fraction, fold=split_fold)
    if split_part not in SPLIT_PARTS:
        raise ValueError(f"--split must be one of {', '.join(SPLIT_PARTS)}, not {split_part!r}")
    if split_part == "test" and len(test) == 0:
        raise ValueError(
            f"--model {model} was trained without a test set (test fraction 0): give "
            "--test-fraction (with the data and split it was trained with) or score --split val, "
            "knowing that its checkpoint was chosen on those tiles"
        )
    evaluated = {"val": held, "test": test, "all": dataset, "train": train}[split_part]
    prior = None
    if get_task(model_task).has_classes:
        prior = class_prior(train, model_task, int(num_classes), multilabel)
    report = evaluate_predictor(
        predictor,
        TileSizedDataset(evaluated, tile_size),
        model_task,
        num_classes,
        multilabel,
        class_names,
        prior,
        batch_size,
        data_range=data_spec.get("data_range"),
        ratio=_pansharpening_ratio(dataset) if get_task(model_task).ergas_ratio else None,
        ids=getattr(evaluated, "indices", None),
        units=evaluated.holdout_units(),
    )
    if model_task == "cloud-removal":
        report["clear_scene"] = clear_scene_check(
            predictor, TileSizedDataset(evaluated, tile_size), batch_size
        )
    report.update(
        {
            "model": str(model),
            "model_kind": kind,
            "data": data_spec,
            "split": {
                "part": split_part,
                "val_fraction": fraction,
                "test_fraction": test_fraction,
                "seed": seed,
                "fold": split_fold,
            },
            "n_train": len(train),
            "n_val": len(held),
            "n_test": len(test),
            "sensors": sensors,
            "pretraining_leak_check": pretraining_leak_check(
                init_record, held.holdout_units() + test.holdout_units()
            ),
        }
    )
    return report


# Reflectance x 10000: the physical range the inference engine clips cloud-removal output to.
REFLECTANCE_RANGE = (0.0, 10000.0)


def clear_scene_check(predictor: Predictor, samples: Any, batch_size: int = 8) -> Dict[str, Any]:
    """What cloud removal does to a clear scene: the held-back samples' clear images as input.

    A cloud-removal model must leave a cloud-free image as it is. Returns the share of output
    values outside the physical range (which the plugin clips), the largest relative change of a
    band's mean, the share of values changed by more than 1 (reflectance x 10000) and the PSNR of
    the output against its input.
    """
    outside = changed = total = 0
    squared = 0.0
    out_sums: Optional[np.ndarray] = None
    in_sums: Optional[np.ndarray] = None
    for start in range(0, len(samples), batch_size):
        batch = [samples[i] for i in range(start, min(start + batch_size, len(samples)))]
        clear = [
            {**s, "inputs": {**s["inputs"], "s2": np.asarray(s["target"], np.float32)}}
            for s in batch
        ]
        output = np.asarray(predictor(clear), dtype=np.float64)
        reference = np.stack([np.asarray(s["target"], np.float64) for s in batch])
        valid = np.isfinite(reference).all(axis=1, keepdims=True) & np.isfinite(output)
        valid = np.broadcast_to(valid, output.shape)
        values, truth = output[valid], reference[valid]
        low, high = REFLECTANCE_RANGE
        outside += int(((values < low) | (values > high)).sum())
        changed += int((np.abs(values - truth) > 1.0).sum())
        squared += float(((values - truth) ** 2).sum())
        total += values.size
        band_out = np.where(valid, output, 0.0).sum(axis=(0, 2, 3))
        band_in = np.where(valid, reference, 0.0).sum(axis=(0, 2, 3))
        out_sums = band_out if out_sums is None else out_sums + band_out
        in_sums = band_in if in_sums is None else in_sums + band_in
    if not total:
        return {"n_values": 0}
    ratio = out_sums / np.maximum(in_sums, 1e-9)
    mse = squared / total
    return {
        "n_values": total,
        "outside_physical_range": outside / total,
        "changed_by_more_than_1": changed / total,
        "band_mean_ratio": [float(r) for r in ratio],
        "largest_band_mean_change": float(np.max(np.abs(ratio - 1.0))),
        "psnr_against_input": float(10 * np.log10(REFLECTANCE_RANGE[1] ** 2 / mse))
        if mse > 0
        else float("inf"),
    }


def pretraining_leak_check(init: Any, held_back: Sequence[Any]) -> Dict[str, Any]:
    """Whether the encoder a checkpoint started from was pretrained on this split's held-back
    ground (validation and test units), as far as the pretraining corpus is recorded.

    ``msgfm train-defaults`` and ``msgfm ablate`` write the corpus they pretrain on as
    ``pretrain-manifest.json`` beside the pretraining run; it is read again and every scene is
    checked against the held-back tiles by patch id and footprint
    (:func:`backend.train.leakage.leaks`).

    Returns:
        ``{"status": "clean" | "leak" | "not pretrained" | "not recorded", ...}`` with the
        manifest checked and, for a leak, the scenes that touch held-back ground.
    """
    from .leakage import HeldBack, leaks

    checkpoint = init.get("checkpoint") if isinstance(init, Mapping) else None
    if not checkpoint:
        return {"status": "not pretrained" if init in (None, "none") else "not recorded"}
    units = list(held_back)
    for folder in list(Path(checkpoint).parents)[:3]:
        manifest = folder / "pretrain-manifest.json"
        if manifest.is_file():
            from ..data.manifest import load_manifest

            found = leaks(load_manifest(manifest), HeldBack.from_units(units))
            return {
                "status": "leak" if found else "clean",
                "manifest": str(manifest),
                "leaks": found,
            }
    return {"status": "not recorded", "pretraining": str(checkpoint)}


def _pansharpening_ratio(dataset: Any) -> Optional[int]:
    """The pan:MS ratio of a pan-sharpening dataset when all its pairs share one, else None."""
    ratios = set(getattr(dataset, "ratios", []))
    return ratios.pop() if len(ratios) == 1 else None


def format_report(report: Mapping[str, Any]) -> str:
    """A plain-text table of the model's and the baseline's scores."""
    lines = [
        f"{report['task']} on {report['n_samples']} {report['split']['part']} samples "
        f"(model: {report['model']})",
        f"{'metric':<28}{'model':>12}{'baseline':>12}",
    ]
    baseline = report["baseline"]["metrics"]
    for key, value in report["metrics"].items():
        other = baseline.get(key, float("nan"))
        lines.append(f"{key:<28}{value:>12.4f}{other:>12.4f}")
    lines.append(f"baseline: {report['baseline']['name']}")
    check = report.get("pretraining_leak_check") or {}
    if check.get("status") == "leak":
        lines.append(
            "WARNING: the encoder was pretrained on held-back ground of this split: "
            + ", ".join(sorted(check["leaks"]))
        )
    elif check.get("status"):
        lines.append(f"pretraining corpus vs held-back ground: {check['status']}")
    return "\n".join(lines)
