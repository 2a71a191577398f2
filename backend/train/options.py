"""The options of ``msgfm pretrain`` and ``msgfm finetune``, declared once.

Each option is a dataclass field with its default, type and help; the command-line flags
(:func:`add_arguments`) and the worker jobs' parameters (:meth:`Options.from_mapping`) are both made
from these declarations, so no default is written twice.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Dict, Mapping, Optional, Sequence, Type, TypeVar

from ..tasks import TASKS
from .trainer import TrainerConfig

_TRAINER = TrainerConfig()
_DEVICES = ("auto", "cpu", "cuda")
_PRECISIONS = ("auto", "bf16", "fp32")

T = TypeVar("T", bound="Options")


def option(
    default: Any = None,
    kind: Any = str,
    help: str = "",
    choices: Optional[Sequence[str]] = None,
    required: bool = False,
) -> Any:
    """A field declaring one option: ``kind`` is ``int``, ``float``, ``str`` or ``bool`` (a
    switch, off by default); ``required`` options have no default."""
    metadata = {"kind": kind, "help": help, "choices": choices, "required": required}
    return field(default=default, metadata=metadata)


class Options:
    """Shared behaviour of the option dataclasses below."""

    @classmethod
    def from_mapping(cls: Type[T], params: Mapping[str, Any], strict: bool = False) -> T:
        """Options from a mapping (a parsed command line's ``vars`` or a worker job's params):
        a missing or None value takes the default, others are converted to the option's type.

        Raises:
            ValueError: ``strict`` and a key that is not an option.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - names)
        if strict and unknown:
            raise ValueError(f"unknown {cls.COMMAND} parameter {unknown[0]!r}")
        values: Dict[str, Any] = {}
        for item in fields(cls):
            value = params.get(item.name)
            # Job parameters arrive as JSON: "300" and 300 are the same option value.
            values[item.name] = item.default if value is None else item.metadata["kind"](value)
        return cls(**values)

    def trainer_fields(self, exclude: Sequence[str] = ()) -> Dict[str, Any]:
        """The options that are :class:`~backend.train.trainer.TrainerConfig` fields by name."""
        names = {f.name for f in fields(TrainerConfig)} - set(exclude)
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in names}


def add_arguments(parser: argparse.ArgumentParser, options: Type[Options]) -> None:
    """Add one ``--flag`` per field of ``options`` (``max_steps`` -> ``--max-steps``)."""
    for item in fields(options):
        meta = item.metadata
        flag = "--" + item.name.replace("_", "-")
        kwargs: Dict[str, Any] = {}
        if meta.get("help"):
            kwargs["help"] = meta["help"]
        if meta["kind"] is bool:
            parser.add_argument(flag, action="store_true", **kwargs)
            continue
        if meta.get("required"):
            kwargs["required"] = True
        else:
            kwargs["default"] = None if item.default is MISSING else item.default
        if meta["kind"] is not str:
            kwargs["type"] = meta["kind"]
        if meta.get("choices"):
            kwargs["choices"] = list(meta["choices"])
        parser.add_argument(flag, **kwargs)


@dataclass
class PretrainOptions(Options):
    """``msgfm pretrain`` (cross-sensor masked image modelling on a manifest)."""

    COMMAND = "pretrain"

    config: str = option("small", help="model config: small, base or a JSON file")
    manifest: str = option("samples", help="manifest name or JSON file")
    data_root: Optional[str] = option(None, help="root of the manifest's relative paths")
    stats: Optional[str] = option(None, help="band statistics JSON (msgfm data stats)")
    out: str = option(_TRAINER.out_dir, help="output folder")
    max_steps: int = option(_TRAINER.max_steps, int)
    batch_size: int = option(_TRAINER.batch_size, int, help="samples per micro-batch per process")
    accumulation: int = option(_TRAINER.accumulation, int)
    lr: float = option(_TRAINER.lr, float)
    weight_decay: float = option(_TRAINER.weight_decay, float)
    warmup_steps: int = option(_TRAINER.warmup_steps, int)
    grad_clip: float = option(_TRAINER.grad_clip, float)
    seed: int = option(_TRAINER.seed, int)
    num_workers: int = option(_TRAINER.num_workers, int)
    threads: int = option(
        _TRAINER.threads,
        int,
        help="torch intra-op threads (0 = one per core); 1 is faster on a CPU shared with other "
        "work (docs/benchmarks.md)",
    )
    device: str = option(_TRAINER.device, choices=_DEVICES)
    precision: str = option(_TRAINER.precision, choices=_PRECISIONS)
    log_every: int = option(_TRAINER.log_every, int)
    checkpoint_every: int = option(_TRAINER.checkpoint_every, int)
    keep_every: int = option(_TRAINER.keep_every, int, help="keep checkpoint-<step> copies")
    probe_every: int = option(
        0, int, help="every N steps, log the representation probe (msgfm probe) to metrics.jsonl"
    )
    registry_stats: str = option(
        "",
        help="comma-separated sensors normalised with the registry's published statistics "
        "instead of the corpus's (e.g. s2,sar)",
    )
    jitter: float = option(
        0.0,
        float,
        help="radiometric augmentation: per-band gain 1±J and offset ±J (normalised units)",
    )
    crop_cache: str = option(
        "",
        help="decode every scene once into a memory-mapped, normalised crop cache reused across "
        "runs and seeds: 'auto' (crop-cache/ beside the sample data) or a folder; off by default",
    )
    no_progress: bool = option(False, bool, help="no progress bar")
    resume: bool = option(False, bool, help="continue from OUT/checkpoint-last")


@dataclass
class FinetuneOptions(Options):
    """``msgfm finetune`` (a task model from a pretraining checkpoint on a data spec)."""

    COMMAND = "finetune"

    task: Optional[str] = option(None, required=True, choices=tuple(TASKS))
    config: str = option("small", help="model config (ignored with --init: the checkpoint's)")
    init: Optional[str] = option(
        None,
        required=True,
        help="pretraining checkpoint or run folder whose encoder starts the model, or 'none'",
    )
    data: Optional[str] = option(
        None,
        help="data spec: finetune_<task> (default), a JSON file, inline JSON or "
        "LAYOUT:PATH[,key=value...]",
    )
    data_root: Optional[str] = option(None, help="root of the data spec's relative paths")
    out: Optional[str] = option(None, required=True, help="output folder")
    max_steps: int = option(300, int)
    epochs: Optional[int] = option(None, int, help="train this many epochs instead")
    batch_size: int = option(8, int)
    accumulation: int = option(1, int)
    lr: float = option(5e-4, float)
    weight_decay: float = option(0.05, float)
    warmup_steps: int = option(10, int)
    layer_decay: float = option(0.75, float)
    linear_probe: bool = option(False, bool, help="freeze the encoder")
    val_fraction: float = option(0.2, float)
    split_seed: int = option(0, int)
    test_fraction: float = option(
        0.0,
        float,
        help="also hold back this fraction as a test set for msgfm evaluate (0 = none)",
    )
    split_fold: Optional[int] = option(None, int, help="leave-one-patch-out fold (test = patch k)")
    val_every: int = option(50, int, help="steps between validations")
    patience: int = option(0, int, help="early stopping (0 = off)")
    monitor: Optional[str] = option(None, help="validation score, e.g. val_mean_iou")
    monitor_mode: Optional[str] = option(None, choices=("min", "max"))
    tile_size: Optional[int] = option(None, int)
    grad_clip: float = option(5.0, float)
    jitter: float = option(
        0.0,
        float,
        help="radiometric augmentation of training inputs: scene gain 1±J, band gain and offset "
        "±J/3 (raw units; SAR ±1 dB); 0 = off",
    )
    rotate: bool = option(
        False, bool, help="rotate training tiles by multiples of 90 degrees besides flipping"
    )
    balanced_sampling: bool = option(
        False, bool, help="draw training samples so that every class appears about equally often"
    )
    class_weight_power: float = option(
        0.0,
        float,
        help="cross-entropy class weights frequency^-P over the training labels (0 = none, "
        "0.5 = square-root balancing)",
    )
    fresh_clouds: bool = option(
        False,
        bool,
        help="cloud removal: new simulated clouds and haze over the clear target at every step",
    )
    clear_fraction: float = option(
        0.2, float, help="with --fresh-clouds: fraction of training samples left clear"
    )
    scene_haze: float = option(
        0.0,
        float,
        help="with --fresh-clouds: haze up to this opacity on half of the samples, on target and "
        "input alike (the scene's atmosphere, not cloud); the clouds then carry no haze",
    )
    cloud_weight_loss: float = option(
        0.2,
        float,
        help="cloud removal: weight of the loss that teaches the cloud weight the cloud opacity",
    )
    sam_loss: float = option(
        0.0,
        float,
        help="image tasks: weight of the spectral angle loss (radians, in sensor units) added to "
        "the L1 loss (0 = L1 only)",
    )
    seed: int = option(0, int)
    num_workers: int = option(0, int)
    device: str = option("auto", choices=_DEVICES)
    precision: str = option("auto", choices=_PRECISIONS)
    checkpoint_every: int = option(100, int)
    no_progress: bool = option(False, bool, help="no progress bar")
    resume: bool = option(False, bool, help="continue from OUT/checkpoint-last")
