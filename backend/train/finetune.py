"""Finetuning msGFM on a downstream task: the pretraining loop's :class:`Trainer` with a task model.

The encoder comes from a pretraining checkpoint (``--init``; sensors it lacks get embeddings
initialised from the nearest pretrained bands) or starts from scratch (``--init none``). Options:
layer-wise learning-rate decay (``--layer-decay``), a frozen encoder (``--linear-probe``), a
spatially separate validation split (``--val-fraction``) scored with the task's metrics every
``--val-every`` steps, early stopping (``--patience``) and ``OUT/checkpoint-best``.

Run it with ``msgfm finetune`` or, across processes or GPUs,
``torchrun --nproc_per_node N -m backend.train.finetune --task ... --out ...``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from ..conventions import json_safe
from ..tasks import TASKS, get_task
from .options import FinetuneOptions, add_arguments
from .trainer import StepOutput, Trainer, TrainerConfig


class TrainingSamples:
    """An endless, seeded stream over a finite training subset (what ``StepBatchSampler`` needs).

    Global sample ``i`` is sample ``perm_e[i mod n]`` of epoch ``e = i // n``, ``perm_e`` a
    permutation drawn from ``(seed, e)`` (with ``weights``: ``n`` draws with replacement, each
    sample with its weight), with flips (and with ``rotate``, quarter turns) and ``augment``
    drawn from ``(seed, i)``: the data order is a function of the step alone, so a resumed run
    sees what the uninterrupted one saw.

    Args:
        subset: Training samples (raw task samples).
        prepare: Turns a raw sample into model-ready arrays.
        seed: Seed of order and flips.
        flips: Random horizontal/vertical flips of every spatial array.
        cache: Keep samples in memory (small datasets re-read every epoch otherwise): prepared
            ones, or raw ones when ``augment`` changes them at every draw.
        augment: ``augment(raw sample, numpy Generator) -> raw sample``, applied at every draw
            before ``prepare`` (radiometric jitter, fresh simulated clouds).
        rotate: Also rotate square tiles by a random multiple of 90 degrees.
        weights: Sampling probability of each sample (class-balanced sampling); None = uniform.
    """

    def __init__(
        self,
        subset: Any,
        prepare,
        seed: int = 0,
        flips: bool = True,
        cache: bool = True,
        augment=None,
        rotate: bool = False,
        weights: Optional[np.ndarray] = None,
    ):
        if len(subset) == 0:
            raise ValueError("no training samples: the data spec gave none after the split")
        if weights is not None and len(weights) != len(subset):
            raise ValueError(f"{len(weights)} sampling weights for {len(subset)} samples")
        self.subset = subset
        self.prepare = prepare
        self.seed = seed
        self.flips = flips
        self.augment = augment
        self.rotate = rotate
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self._cache: Optional[Dict[int, Dict[str, Any]]] = {} if cache else None

    def __len__(self) -> int:
        return 2**31 - 1

    def _cached(self, index: int, make) -> Dict[str, Any]:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        value = make(index)
        if self._cache is not None:
            self._cache[index] = value
        return value

    def _prepared(self, index: int) -> Dict[str, Any]:
        return self._cached(index, lambda i: self.prepare(self.subset[i]))

    def sample_index(self, index: int) -> int:
        """The subset index that global draw ``index`` takes."""
        n = len(self.subset)
        epoch, position = divmod(int(index), n)
        rng = np.random.default_rng([self.seed, epoch])
        if self.weights is not None:
            return int(rng.choice(n, size=n, p=self.weights / self.weights.sum())[position])
        return int(rng.permutation(n)[position])

    def __getitem__(self, index: int) -> Dict[str, Any]:
        chosen = self.sample_index(index)
        if self.augment is None:
            sample = self._prepared(chosen)
        else:
            raw = self._cached(chosen, lambda i: self.subset[i])
            sample = self.prepare(self.augment(raw, np.random.default_rng([self.seed, index, 2])))
        if not self.flips and not self.rotate:
            return sample
        rng = np.random.default_rng([self.seed, int(index), 1])
        axes = [axis for axis in (-1, -2) if rng.random() < 0.5]
        rotations = int(rng.integers(4)) if self.rotate else 0
        if axes:
            sample = _flip(sample, axes)
        if rotations:
            sample = _rotate(sample, rotations)
        return sample


def _flip(value: Any, axes: List[int]) -> Any:
    if isinstance(value, dict):
        return {k: _flip(v, axes) for k, v in value.items()}
    if isinstance(value, np.ndarray) and value.ndim >= 2:
        return np.ascontiguousarray(np.flip(value, axis=axes))
    return value


def _rotate(value: Any, rotations: int) -> Any:
    if isinstance(value, dict):
        return {k: _rotate(v, rotations) for k, v in value.items()}
    if isinstance(value, np.ndarray) and value.ndim >= 2:
        if value.shape[-1] != value.shape[-2]:
            raise ValueError(f"--rotate needs square tiles, got {value.shape[-2:]}")
        return np.ascontiguousarray(np.rot90(value, k=rotations, axes=(-2, -1)))
    return value


# Training augmentations and class balancing, off by default (``msgfm finetune`` flags).
AUGMENTATION: Dict[str, Any] = {
    "jitter": 0.0,
    "rotate": False,
    "balanced_sampling": False,
    "class_weight_power": 0.0,
    "fresh_clouds": False,
    "clear_fraction": 0.2,
    "scene_haze": 0.0,
    "cloud_weight_loss": 0.2,
    "sam_loss": 0.0,
}


def _target_of(samples: Any, index: int) -> np.ndarray:
    """The class target of a training sample, without reading its imagery where the dataset can."""
    dataset, position = samples, index
    # TileSizedDataset -> Subset -> dataset with target(): read labels only.
    inner = getattr(dataset, "dataset", None)
    if inner is not None and hasattr(inner, "indices") and hasattr(inner.dataset, "target"):
        return np.asarray(inner.dataset.target(inner.indices[position]))
    return np.asarray(dataset[position]["target"])


class FinetuneTrainer(Trainer):
    """A downstream task on top of :class:`Trainer`.

    Args:
        config: Run settings. With ``monitor_default``, ``config.monitor`` becomes the task's
            score (:func:`~backend.train.evaluate.default_monitor`) unless set to another
            score than ``val_loss``.
        task: ``classification``, ``segmentation``, ``cloud-removal`` or ``pansharpening``.
        data: Data spec (dict) or ``--data`` text (see :mod:`backend.train.data_spec`).
        init: Pretraining checkpoint (folder or run folder) or None for random weights.
        model_config: Config name or JSON file; with ``init`` the checkpoint's config is used.
        data_root: Root of the data spec's relative paths.
        val_fraction: Fraction of samples held back for validation (spatially separate).
        split_seed: Seed of the split.
        test_fraction: Fraction held back as a test set that training and every choice of the
            run (early stopping, ``checkpoint-best``) never see; ``msgfm evaluate`` scores it.
            0 = no test set.
        split_fold: Leave-one-group-out fold (whole patches; overrides the fractions' groups).
        linear_probe: Freeze the encoder; train the head only.
        layer_decay: Layer-wise lr decay factor (1 = none); it applies to pretrained weights
            only (a run from random weights, or a sensor's new patch embedding, has none).
        tile_size: Training tile size (default: the data spec's ``tile_size``, else the config's
            ``image_size``).
        monitor_default: Use the task's default score for ``checkpoint-best`` and early stopping.
        augmentation: Training augmentations and class balancing (:data:`AUGMENTATION`'s keys:
            ``jitter``, ``rotate``, ``balanced_sampling``, ``class_weight_power``,
            ``fresh_clouds``, ``clear_fraction``, ``scene_haze``, ``cloud_weight_loss``).
        statistics: Band statistics to normalise with instead of the ``init`` checkpoint's
            (``{"sensors": {...}}`` or ``{sensor: {"mean", "std"}}``): a comparison of several
            runs passes the same ones to every run, pretrained or not, so that normalisation is
            not what differs between them (:func:`task_normalization`).
    """

    def __init__(
        self,
        config: TrainerConfig,
        task: str,
        data: Any,
        init: Optional[str] = None,
        model_config: str = "small",
        data_root: Optional[str] = None,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        linear_probe: bool = False,
        test_fraction: float = 0.0,
        split_fold: Optional[int] = None,
        layer_decay: float = 0.75,
        tile_size: Optional[int] = None,
        monitor_default: bool = True,
        augmentation: Optional[Mapping[str, Any]] = None,
        statistics: Optional[Mapping[str, Any]] = None,
    ):
        super().__init__(config)
        if task not in TASKS:
            raise ValueError(f"--task must be one of {', '.join(TASKS)}, not {task!r}")
        if not 0.0 < layer_decay <= 1.0:
            raise ValueError(f"--layer-decay must be in (0, 1], got {layer_decay}")
        from ..models.config import ModelConfig, get_config
        from .data_spec import load_data_spec

        self.task = task
        self.data_spec = load_data_spec(data) if isinstance(data, str) else dict(data)
        self.data_root = data_root
        self.init = None if init in (None, "", "none") else str(init)
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.test_fraction = float(test_fraction)
        self.split_fold = None if split_fold is None else int(split_fold)
        self.linear_probe = linear_probe
        self.layer_decay = layer_decay
        self.pretrained_meta: Dict[str, Any] = {}
        if self.init is not None:
            from ..checkpoints import META_FILE, resolve_checkpoint

            folder = resolve_checkpoint(self.init)
            if folder is None:
                raise FileNotFoundError(
                    f"--init {self.init}: no pretraining checkpoint there (model.safetensors + "
                    "meta.json, or a run folder with checkpoint-last); use --init none to start "
                    "from random weights"
                )
            self.pretrained_meta = json.loads((folder / META_FILE).read_text())
            # The encoder's sizes are the checkpoint's, whatever --config says.
            self.model_config = ModelConfig.from_dict(self.pretrained_meta["model_config"])
        else:
            self.model_config = get_config(model_config)
        size = tile_size or self.data_spec.get("tile_size") or self.model_config.image_size
        self.tile_size = int(size)
        self.monitor_default = monitor_default
        unknown = sorted(set(augmentation or {}) - set(AUGMENTATION))
        if unknown:
            raise ValueError(
                f"unknown augmentation settings {unknown}; known: {list(AUGMENTATION)}"
            )
        self.augmentation = {**AUGMENTATION, **dict(augmentation or {})}
        if self.augmentation["fresh_clouds"] and get_task(task).target_sensor != "s2":
            raise ValueError("--fresh-clouds applies to cloud removal only")
        if not 0.0 <= float(self.augmentation["clear_fraction"]) < 1.0:
            raise ValueError("--clear-fraction must be in [0, 1)")
        if not 0.0 <= float(self.augmentation["scene_haze"]) < 1.0:
            raise ValueError("--scene-haze must be in [0, 1)")
        self.class_weights: Optional[List[float]] = None
        self.task_spec = None
        self.normalization: Dict[str, Dict[str, List[float]]] = {}
        self.statistics = statistics
        self.init_report: Any = "none"
        self._dataset = None
        self._split = None
        self._absent_inputs: Optional[Dict[str, int]] = None

    # --- data -----------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Read the data spec, split it, and derive the task spec and normalisation (once)."""
        if self._split is not None:
            return
        from ..data.tasks import split
        from ..data.tasks.views import TileSizedDataset
        from ..models.tasks import TaskSpec
        from .data_spec import build_dataset, describe_dataset
        from .evaluate import default_monitor

        dataset = build_dataset(self.data_spec, self.task, self.data_root)
        train, held, test = split(
            dataset,
            self.val_fraction,
            self.split_seed,
            test_fraction=self.test_fraction,
            fold=self.split_fold,
        )
        self._dataset = dataset
        self._split = (
            TileSizedDataset(train, self.tile_size),
            TileSizedDataset(held, self.tile_size),
        )
        self.n_test = len(test)
        self._raw_train = train
        if self.task_spec is None:
            info = describe_dataset(dataset, self.task, self.data_spec)
            fields = {k: v for k, v in info.items() if v not in (None, [])}
            if not get_task(self.task).has_classes:
                fields.pop("multilabel", None)
            self.task_spec = TaskSpec(task=self.task, image_size=self.tile_size, **fields)
        if not self.normalization:
            if self.statistics is not None:
                source, origin = {"normalization": self.statistics}, "the statistics given"
            else:
                source, origin = self.pretrained_meta, self.init or "random initialisation"
            self.normalization = task_normalization(self.task_spec, source, origin)
        if self.monitor_default and self.config.monitor == "val_loss":
            monitor, mode = default_monitor(self.task, bool(self.task_spec.multilabel))
            self.config.monitor, self.config.monitor_mode = monitor, mode

    @property
    def train_samples(self):
        """The training split (tile-sized raw samples)."""
        self.prepare_data()
        return self._split[0]

    @property
    def val_samples(self):
        """The held-back split (tile-sized raw samples)."""
        self.prepare_data()
        return self._split[1]

    def model_ready(self, sample: Mapping[str, Any]) -> Dict[str, Any]:
        """Normalised inputs, the target (normalised for image tasks) and a valid mask."""
        from ..data.tasks import normalize_inputs

        spec = self.task_spec
        inputs = {s: sample["inputs"][s] for s in spec.sensors}
        out: Dict[str, Any] = {"inputs": normalize_inputs(inputs, self.normalization)}
        target = np.asarray(sample["target"])
        if not spec.task_type.has_classes:
            stats = self.normalization[spec.target_sensor]
            mean = np.asarray(stats["mean"], dtype=np.float32).reshape(-1, 1, 1)
            std = np.asarray(stats["std"], dtype=np.float32).reshape(-1, 1, 1)
            target = ((target.astype(np.float32) - mean) / std).astype(np.float32)
            valid = np.asarray(sample.get("valid", np.isfinite(target).all(axis=0)), dtype=bool)
            out["valid"] = valid
            if "opacity" in sample or "cloud_mask" in sample:
                # What the cloud weight of a gated head learns: the simulated cloud opacity, or
                # the cloud mask of real pairs.
                opacity = sample.get("opacity", sample.get("cloud_mask"))
                out["opacity"] = np.asarray(opacity, dtype=np.float32)
        elif not spec.task_type.scene_level:
            target = target.astype(np.int64)
        elif spec.multilabel:
            target = target.astype(np.float32)
        else:
            target = np.asarray(target, dtype=np.int64)
        out["target"] = target
        return out

    # --- hooks ----------------------------------------------------------------------------------

    def restore_meta(self, meta: Dict[str, Any]) -> None:
        """Resume with the checkpoint's task, model config and normalisation."""
        from ..models.config import ModelConfig
        from ..models.tasks import TaskSpec

        self.model_config = ModelConfig.from_dict(meta["model_config"])
        self.task_spec = TaskSpec.from_dict(meta["task_spec"])
        self.normalization = meta["normalization"]
        self.tile_size = self.task_spec.image_size

    def build_model(self):
        """The task model, its encoder loaded from ``--init`` (and frozen for a linear probe)."""
        from ..models.tasks import build_task_model, freeze_encoder, load_pretrained_encoder

        self.prepare_data()
        model = build_task_model(self.model_config, self.task_spec)
        model.set_normalization(self.normalization)
        if self.init is not None:
            self.init_report = load_pretrained_encoder(model, self.init)
            if self.context is not None:
                self.context.say(f"msgfm: encoder from {self.init}: {self.init_report}")
        if self.linear_probe:
            freeze_encoder(model)
        return model

    def build_dataset(self):
        """The training split as an endless seeded stream of model-ready samples."""
        settings = self.augmentation
        weights = None
        spec = self.task_spec
        if spec.task_type.has_classes and (
            settings["balanced_sampling"] or settings["class_weight_power"] > 0
        ):
            from ..data.tasks.augment import class_balanced_weights, class_loss_weights

            targets = [_target_of(self.train_samples, i) for i in range(len(self.train_samples))]
            if settings["balanced_sampling"]:
                weights = class_balanced_weights(targets, int(spec.num_classes))
            if settings["class_weight_power"] > 0:
                self.class_weights = class_loss_weights(
                    targets, int(spec.num_classes), power=float(settings["class_weight_power"])
                ).tolist()
        return TrainingSamples(
            self.train_samples,
            self.model_ready,
            seed=self.config.seed,
            cache=len(self.train_samples) <= 2048,
            augment=self._augment_function(),
            rotate=bool(settings["rotate"]),
            weights=weights,
        )

    def _augment_function(self):
        """The per-draw augmentation of raw training samples (None: none asked for)."""
        from functools import partial

        from ..data.tasks import augment
        from ..sensors import get_sensor

        settings = self.augmentation
        jitter = None
        if settings["jitter"] > 0:
            j = float(settings["jitter"])
            jitter = augment.JitterSettings(gain=j, band_gain=j / 3, offset=j / 3)
        if settings["fresh_clouds"]:
            return partial(
                augment.fresh_clouds,
                band_names=get_sensor("s2").bands,
                clear_probability=float(settings["clear_fraction"]),
                scene_haze=float(settings["scene_haze"]),
                jitter=jitter,
            )
        if jitter is not None:
            return partial(augment.jitter_inputs, settings=jitter)
        return None

    def build_val_dataset(self):
        """The held-back split (raw samples; scored in the target's units)."""
        return _ValidationSamples(self.val_samples, self.model_ready)

    def collate(self, samples: List[Any]) -> Any:
        """Default collation, keeping raw samples of validation batches for scoring."""
        from torch.utils.data import default_collate

        raw = [s.pop("_raw") for s in samples if "_raw" in s]
        batch = default_collate(samples)
        if raw:
            batch["_raw"] = raw
        return batch

    def to_device(self, batch: Any) -> Any:
        if isinstance(batch, dict) and "_raw" in batch:
            raw = batch.pop("_raw")
            moved = super().to_device(batch)
            moved["_raw"] = raw
            return moved
        return super().to_device(batch)

    @property
    def effective_layer_decay(self) -> float:
        """Layer decay as applied: none (1.0) for a run from random weights, which has no
        pretrained layers to protect; a random-init arm slowed by it would be handicapped."""
        return self.layer_decay if self.init is not None else 1.0

    def configure_optimizer(self, model):
        """AdamW with layer-wise lr decay (head at ``lr``; frozen parameters left out)."""
        import torch

        from ..models.tasks import param_groups_lrd

        report = self.init_report if isinstance(self.init_report, dict) else {}
        not_pretrained = [f"encoder.embeddings.{sensor}." for sensor in report.get("random", [])]
        groups = param_groups_lrd(
            model,
            self.config.lr,
            self.config.weight_decay,
            self.effective_layer_decay,
            not_pretrained=not_pretrained,
        )
        if not groups:
            raise ValueError("the model has no trainable parameter")
        return torch.optim.AdamW(groups, lr=self.config.lr, betas=tuple(self.config.betas))

    def _loss(self, model, batch) -> tuple:
        from ..models.tasks import cloud_weight_loss, spectral_angle_loss, task_loss

        output = model(batch["inputs"])
        loss = task_loss(
            self.task_spec,
            output,
            batch["target"],
            valid=batch.get("valid"),
            class_weights=self.class_weights,
        )
        sam_weight = float(self.augmentation["sam_loss"])
        if sam_weight and not self.task_spec.task_type.has_classes:
            stats = self.normalization[self.task_spec.target_sensor]
            loss = loss + sam_weight * spectral_angle_loss(
                output, batch["target"], stats["mean"], stats["std"], batch.get("valid")
            )
        inner = getattr(model, "module", model)
        probability = getattr(inner.head, "cloud_probability", None)
        if (
            probability is not None
            and "opacity" in batch
            and self.augmentation["cloud_weight_loss"]
        ):
            loss = loss + float(self.augmentation["cloud_weight_loss"]) * cloud_weight_loss(
                probability, batch["opacity"], batch.get("valid")
            )
        return output, loss, inner.aux_loss

    def training_step(self, model, batch) -> StepOutput:
        """Task loss + weighted MoE load-balancing loss."""
        _, loss, aux = self._loss(model, batch)
        total = loss + self.model_config.aux_loss_weight * aux
        return StepOutput(
            loss=total,
            metrics={"task_loss": float(loss.detach()), "aux_loss": float(aux.detach())},
        )

    def validation_step(self, model, batch) -> StepOutput:
        """Loss, and the predictions in the scorer's space."""
        from .evaluate import scores_from_output

        output, loss, _ = self._loss(model, batch)
        spec = self.task_spec
        stats = self.normalization.get(spec.target_sensor, {}) if spec.target_sensor else {}
        scores = scores_from_output(spec.task, spec.multilabel, output.float().cpu().numpy(), stats)
        return StepOutput(loss=loss, predictions=(scores, batch["_raw"]))

    def validation_end(self, outputs: List[StepOutput]) -> Dict[str, Any]:
        """The task's metrics on the held-back samples, with the mean validation loss."""
        from .evaluate import TaskScorer

        spec = self.task_spec
        scorer = TaskScorer(spec.task, spec.num_classes, spec.multilabel, spec.class_names)
        for output in outputs:
            scores, raw = output.predictions
            scorer.add(scores, raw)
        result = {"loss": float(np.mean([float(o.loss) for o in outputs]))}
        result.update(scorer.result())
        return result

    def checkpoint_meta(self) -> Dict[str, Any]:
        """The finetuning checkpoint contract: task, configs, normalisation, metrics, data."""
        from .. import __version__

        self.prepare_data()
        # Undefined scores (a class absent from the held-back tiles) are null in meta.json.
        metrics = json_safe({k[len("val_") :]: v for k, v in self.val_metrics.items()})
        if metrics:
            metrics.setdefault("n_samples", float(len(self.val_samples)))
        return {
            "task": self.task,
            "msgfm_version": __version__,
            "model_config": self.model_config.to_dict(),
            "task_spec": self.task_spec.to_dict(),
            "normalization": self.normalization,
            "metrics": metrics,
            "trained_on": self.trained_on(),
            "init": self.init_report,
            "linear_probe": self.linear_probe,
            "layer_decay": self.effective_layer_decay,
            "augmentation": dict(self.augmentation),
            "class_weights": self.class_weights,
            "data": {
                "spec": self.data_spec,
                "data_root": self.data_root,
                "val_fraction": self.val_fraction,
                "split_seed": self.split_seed,
                "test_fraction": self.test_fraction,
                "split_fold": self.split_fold,
                "n_train": len(self.train_samples),
                "n_val": len(self.val_samples),
                "n_test": self.n_test,
                "absent_inputs": self.absent_inputs(),
            },
        }

    def absent_inputs(self) -> Dict[str, int]:
        """Training samples without any data for each model input (export marks such an input
        optional: the model learned to run without it)."""
        from ..data.tasks.normalization import absent_inputs

        self.prepare_data()
        if self._absent_inputs is None:
            self._absent_inputs = absent_inputs(self._raw_train, self.task_spec.sensors)
        return dict(self._absent_inputs)

    def trained_on(self) -> str:
        """One line saying what the model was trained on, with sample counts."""
        description = self.data_spec.get("description") or json.dumps(
            {k: v for k, v in self.data_spec.items() if k != "note"}
        )
        return (
            f"{description}; {len(self.train_samples)} training and {len(self.val_samples)} "
            f"held-back {self.tile_size}-pixel samples"
        )

    def fit(self, resume: bool = False) -> Dict[str, Any]:
        """Train; writes ``OUT/summary.json`` (rank 0)."""
        self.prepare_data()
        result = super().fit(resume)
        result.update(
            {
                "task": self.task,
                "n_train": len(self.train_samples),
                "n_val": len(self.val_samples),
                "n_test": self.n_test,
                "monitor": self.config.monitor,
                "init": self.init_report,
            }
        )
        if self.context is not None and self.context.is_main:
            (self.out_dir / "summary.json").write_text(
                json.dumps(json_safe(result), indent=2) + "\n"
            )
        return result


class _ValidationSamples:
    """Held-back samples, model-ready, each carrying its raw sample for scoring."""

    def __init__(self, subset: Any, prepare):
        self.subset = subset
        self.prepare = prepare
        self._cache: Dict[int, Dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.subset)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        if index not in self._cache:
            raw = self.subset[index]
            prepared = dict(self.prepare(raw))
            prepared["_raw"] = raw
            self._cache[index] = prepared
        return dict(self._cache[index])


def task_normalization(
    spec: Any, pretrained_meta: Mapping[str, Any], origin: str = "the checkpoint"
) -> Dict[str, Any]:
    """``{sensor: {"mean", "std"}}`` for every input and the target sensor.

    A pretraining checkpoint's statistics are used for the sensors it has (the encoder learned
    on them). A sensor it does not have (its patch embedding is new, learned in finetuning) gets
    the registry's published statistics, as does every sensor of a run from random weights
    (``pretrained_meta`` empty). Comparisons of pretrained and random-init runs pass one set of
    statistics to every run instead (``FinetuneTrainer(statistics=...)``).

    Raises:
        ValueError: the statistics have another band count than the sensor (a checkpoint of
            another band layout): normalising with the registry's instead would silently give
            the encoder inputs it was not trained on.
    """
    from ..sensors import get_sensor

    given = pretrained_meta.get("normalization") or {}
    # A statistics document ({"sensors": ...}) or {sensor: {"mean", "std"}} itself.
    stats = given.get("sensors", given)
    sensors = list(spec.sensors) + (
        [spec.target_sensor]
        if spec.target_sensor and spec.target_sensor not in spec.sensors
        else []
    )
    out = {}
    for sensor in sensors:
        entry = get_sensor(sensor)
        source = stats.get(sensor)
        if source is None:
            source = {"mean": entry.mean, "std": entry.std}
        elif not len(source.get("mean", [])) == len(source.get("std", [])) == entry.num_bands:
            raise ValueError(
                f"{origin}: its statistics for sensor {sensor!r} have "
                f"{len(source.get('mean', []))} band(s), the {sensor} input has "
                f"{entry.num_bands} ({', '.join(entry.bands)}): it was pretrained with another "
                f"band layout. Pretrain again with this version's {sensor!r} bands, or finetune "
                "from random weights (--init none)"
            )
        out[sensor] = {
            "mean": [float(v) for v in source["mean"]],
            "std": [float(v) for v in source["std"]],
        }
    return out


# --- command line -------------------------------------------------------------------------------


def add_finetune_arguments(parser) -> None:
    """The ``finetune`` flags (shared by ``msgfm finetune`` and ``python -m``)."""
    add_arguments(parser, FinetuneOptions)


def trainer_from_params(
    params: Mapping[str, Any], statistics: Optional[Mapping[str, Any]] = None
) -> FinetuneTrainer:
    """Build the trainer from ``finetune`` flags as a mapping (CLI namespace or worker params);
    ``statistics`` replaces the ``--init`` checkpoint's (see :class:`FinetuneTrainer`)."""

    options = FinetuneOptions.from_mapping(params)
    for name in ("max_steps", "batch_size", "accumulation", "checkpoint_every"):
        if getattr(options, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    task = options.task
    if not task:
        raise ValueError("--task is required")
    config = TrainerConfig(
        out_dir=str(options.out),
        progress=not options.no_progress,
        monitor=options.monitor or "val_loss",
        monitor_mode=options.monitor_mode or "min",
        **options.trainer_fields(exclude=("monitor", "monitor_mode")),
    )
    trainer = FinetuneTrainer(
        config,
        task,
        options.data or f"finetune_{task}",
        init=options.init,
        model_config=options.config,
        data_root=options.data_root,
        val_fraction=options.val_fraction,
        split_seed=options.split_seed,
        test_fraction=options.test_fraction,
        split_fold=options.split_fold,
        linear_probe=options.linear_probe,
        layer_decay=options.layer_decay,
        tile_size=options.tile_size,
        monitor_default=options.monitor is None,
        augmentation={name: getattr(options, name) for name in AUGMENTATION},
        statistics=statistics,
    )
    epochs = options.epochs
    if epochs:
        # An epoch is one pass over the training split at the effective batch size.
        per_step = config.batch_size * config.accumulation
        config.max_steps = max(1, -(-int(epochs) * len(trainer.train_samples) // per_step))
    return trainer


def run_finetune(args) -> int:
    """Handler of ``msgfm finetune``: train and print a JSON summary on stdout (rank 0)."""
    try:
        trainer = trainer_from_params(vars(args))
        if args.resume:
            from ..checkpoints import resolve_checkpoint

            if resolve_checkpoint(args.out) is None:
                print(
                    f"msgfm finetune: --resume given but {args.out} holds no checkpoint; "
                    "run without --resume to start",
                    file=sys.stderr,
                )
                return 2
        result = trainer.fit(resume=args.resume)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"msgfm finetune: {message}", file=sys.stderr)
        return 2
    if trainer.context is None or trainer.context.is_main:
        print(json.dumps(json_safe(result), default=str))  # undefined scores as null
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point for ``python -m backend.train.finetune`` (and ``torchrun -m``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="msgfm-finetune", description=__doc__)
    add_finetune_arguments(parser)
    return run_finetune(parser.parse_args(argv))


if __name__ == "__main__":
    from .distributed import exit_process

    exit_process(main())
