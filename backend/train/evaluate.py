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

    def add(self, predictions: np.ndarray, samples: Sequence[Mapping[str, Any]]) -> None:
        """Add a batch: ``predictions`` as the module docstring says, one raw sample per row."""
        predictions = np.asarray(predictions)
        if len(predictions) != len(samples):
            raise ValueError(f"{len(predictions)} predictions for {len(samples)} samples")
        if self.task_type.scene_level:
            self._scores.append(predictions.reshape(len(samples), -1).astype(np.float64))
            self._targets.append(np.stack([np.asarray(s["target"]) for s in samples]))
        elif self.task_type.has_classes:
            self._scores.append(np.argmax(predictions, axis=1).astype(np.int64))
            self._targets.append(np.stack([np.asarray(s["target"]) for s in samples]))
        else:
            for prediction, sample in zip(predictions, samples):
                reference = np.asarray(sample["target"], dtype=np.float64)
                valid = np.isfinite(reference).all(axis=0)
                if "valid" in sample:
                    valid &= np.asarray(sample["valid"], dtype=bool)
                if not valid.any():
                    continue
                self._tile_scores.append(
                    task_metrics.restoration_metrics(
                        np.where(valid, prediction, 0.0),
                        np.where(valid, reference, 0.0),
                        self.data_range,
                        ratio=self.ratio,
                        valid=valid,
                    )
                )

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
    from ..export.schema import InputSpec
    from ..sensors import get_sensor

    specs = {}
    for sensor in meta["task_spec"]["sensors"]:
        entry = get_sensor(sensor)
        stats = meta["normalization"].get(sensor, {})
        specs[sensor] = InputSpec(
            name=sensor,
            sensor=sensor,
            bands=list(entry.bands),
            mean=[float(v) for v in stats.get("mean", entry.mean)],
            std=[float(v) for v in stats.get("std", entry.std)],
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
        if not get_task(task).scene_level and hasattr(dataset, "_label_window"):
            labels = dataset._label_window(*dataset.tiles[index])
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
) -> Dict[str, Any]:
    """Score a predictor and the task's baseline on the held-back samples.

    ``data_range`` and ``ratio`` (PSNR/SSIM peak and ERGAS pan:MS ratio) default to
    the task's ``data_range`` and ``ergas_ratio`` (:mod:`backend.tasks`).

    Returns:
        ``{"task", "n_samples", "metrics": {...}, "baseline": {"name", "metrics"}}``.
    """
    scorer = TaskScorer(task, num_classes, multilabel, class_names, data_range, ratio)
    baseline = TaskScorer(task, num_classes, multilabel, class_names, data_range, ratio)
    total = len(held_back)
    if total == 0:
        raise ValueError("there are no held-back samples to evaluate on")
    for start in range(0, total, batch_size):
        samples = [held_back[i] for i in range(start, min(start + batch_size, total))]
        scorer.add(predictor(samples), samples)
        baseline.add(baseline_predictions(task, samples, prior), samples)
        if progress is not None:
            progress(min(start + batch_size, total) / total, f"scored {start + len(samples)}")
    return {
        "task": task,
        "n_samples": total,
        "metrics": scorer.result(),
        "baseline": {"name": BASELINE_NAMES[task], "metrics": baseline.result()},
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
