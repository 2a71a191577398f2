"""Export a pretraining or finetuning checkpoint to one self-describing ONNX file, checked by ONNX
Runtime against torch.

The graph takes normalised float32 images named by sensor (``(N, C, tile, tile)``, dynamic batch)
and gives what the metadata's output kinds promise the inference engine:

- classification: ``classes`` (kind ``class``) and ``probabilities`` (kind ``probability``), both
  ``(N, K)`` softmax (single-label) or sigmoid (multi-label) probabilities, one value per window
  (``stride == tile_size``). The class output gives the engine's class raster (top class);
  the probability output the scene grid.
- segmentation: ``classes`` and ``probabilities``, ``(N, K, tile, tile)`` softmax.
- cloud removal, pan-sharpening: ``reflectance`` ``(N, C, tile, tile)`` in normalised units with
  per-band ``scale`` = std and ``offset`` = mean of the target sensor, so the engine writes the
  sensor's physical units.
- a pretraining checkpoint: the encoder alone, task ``embedding``: its last stage, stride 32,
  one band per feature.

The file is written beside its final name and renamed into place only once ONNX Runtime agrees
with torch within the tolerance on tiles at a batch size other than the traced one (a mismatch
raises :class:`ExportParityError` and leaves no file), and its metadata reads back through
:func:`~.schema.read_model_metadata`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from ..models.config import ModelConfig
from ..models.embedding_head import embedding_stages, embedding_width
from ..models.encoder import MsGFMEncoder
from ..models.export_wrapper import EmbeddingExportWrapper
from ..models.onnx_warnings import export_warnings_that_do_not_apply_ignored
from ..models.tasks import TaskModel, TaskSpec, build_task_model
from ..sensors import get_sensor
from ..tasks import get_task
from .schema import (
    ClassInfo,
    InputSpec,
    ModelMetadata,
    OutputSpec,
    embed_metadata,
    read_model_metadata,
)

OPSET = 17
DEFAULT_OVERLAP = 0.25
EMBEDDING_OUTPUT = "embedding"


class ExportParityError(RuntimeError):
    """ONNX Runtime's output differs from torch's beyond the tolerance."""

    def __init__(self, message: str, max_abs_diff: float):
        super().__init__(message)
        self.max_abs_diff = max_abs_diff


@dataclass
class ExportReport:
    """What an export wrote and how well ONNX Runtime matched torch.

    Attributes:
        path: The written ``.onnx`` file.
        max_abs_diff: Largest absolute difference between ONNX Runtime and torch over all
            outputs of the parity check.
        metadata: The embedded metadata.
        parity_batch_size: Tiles in the parity check (never the traced batch size).
        parity_inputs: ``real tiles`` or ``random normal``.
        experts_unused: (MoE block, expert) pairs that no parity token was routed to: their
            weights were not compared.
        per_output: Max abs difference per graph output.
    """

    path: Path
    max_abs_diff: float
    metadata: ModelMetadata
    parity_batch_size: int
    parity_inputs: str
    experts_unused: int = 0
    per_output: Dict[str, float] = field(default_factory=dict)


def export_checkpoint(
    checkpoint_dir: Union[str, Path],
    out_path: Union[str, Path],
    *,
    batch_size: int = 2,
    tolerance: float = 1e-4,
    sample_inputs: Optional[Mapping[str, np.ndarray]] = None,
    sensors: Optional[Sequence[str]] = None,
    tile_size: Optional[int] = None,
    model_name: Optional[str] = None,
    model_version: Optional[str] = None,
) -> ExportReport:
    """Export a checkpoint to ``out_path`` and check it with ONNX Runtime.

    Args:
        checkpoint_dir: A checkpoint folder (``model.safetensors`` + ``meta.json``) or a run's
            output folder.
        out_path: The ``.onnx`` file to write (replaced on success).
        batch_size: Batch size traced at export (the batch axis stays dynamic).
        tolerance: Largest allowed absolute difference between ONNX Runtime and torch.
        sample_inputs: Normalised real tiles ``{sensor: (N, C, tile, tile)}`` for the parity
            check (default: seeded random normal tiles).
        sensors: Embedding export only: the encoder inputs (fused by summing); required when the
            encoder has more than one sensor.
        tile_size: Embedding export only: tile size (default: the pretraining image size).
        model_name: Metadata ``model_name`` (default ``msgfm-<config>-<task>-<sensors>``).
        model_version: Metadata ``model_version`` (default: the checkpoint's msGFM version).

    Raises:
        ExportParityError: ONNX Runtime and torch differ by more than ``tolerance``.
        FileNotFoundError: No checkpoint at ``checkpoint_dir``.
        ValueError: Inconsistent checkpoint, sensors or sample inputs.
    """
    from ..checkpoints import META_FILE, resolve_checkpoint

    folder = resolve_checkpoint(checkpoint_dir)
    if folder is None:
        raise FileNotFoundError(
            f"no checkpoint in {checkpoint_dir}: expected model.safetensors and {META_FILE} "
            "there or in its checkpoint-last folder"
        )
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, not {batch_size}")
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    if meta.get("task") == "pretrain":
        plan = _embedding_plan(folder, meta, sensors, tile_size)
    else:
        if sensors or tile_size:
            raise ValueError(
                "sensors and tile_size apply to the encoder (embedding) export of a pretraining "
                f"checkpoint; {folder} is a {meta.get('task')!r} model with fixed inputs"
            )
        plan = _task_plan(folder, meta)

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".{out_path.stem}.partial-{os.getpid()}.onnx")
    try:
        feeds, kind = _parity_inputs(sample_inputs, plan.sensors, plan.tile_size, batch_size)
        examples = _random_inputs(plan.sensors, batch_size, plan.tile_size, seed=0)
        _export_graph(plan.wrapper, examples, partial, plan.sensors, plan.output_names)
        metadata = _metadata(plan, meta, model_name, model_version)
        _write_metadata(partial, metadata)
        # One session serves both checks: the metadata a consumer reads back, and parity.
        session = _open_session(partial)
        read_model_metadata(partial, session=session)
        per_output = check_parity(plan.wrapper, session, feeds, plan.output_names, tolerance)
        del session
        max_diff = max(per_output.values())
        with torch.no_grad():
            load = plan.encoder({s: torch.from_numpy(feeds[s]) for s in plan.sensors}).expert_load
        unused = int((load == 0).sum())
        metadata.extra["export"] = {
            "max_abs_diff": max_diff,
            "tolerance": tolerance,
            "parity_batch_size": len(feeds[plan.sensors[0]]),
            "parity_inputs": kind,
            "experts_unused": unused,
            "opset": OPSET,
            "torch_version": torch.__version__,
        }
        _write_metadata(partial, metadata)
        os.replace(partial, out_path)
    finally:
        if partial.exists():
            partial.unlink()
    return ExportReport(
        path=out_path,
        max_abs_diff=max_diff,
        metadata=metadata,
        parity_batch_size=len(feeds[plan.sensors[0]]),
        parity_inputs=kind,
        experts_unused=unused,
        per_output=per_output,
    )


def check_parity(
    wrapper: nn.Module,
    session: Any,
    feeds: Mapping[str, np.ndarray],
    output_names: Sequence[str],
    tolerance: float,
) -> Dict[str, float]:
    """Run the ONNX model and the torch module on the same inputs and compare every output.

    Args:
        wrapper: The exported torch module (eval mode).
        session: An ``onnxruntime.InferenceSession`` of the exported file.
        feeds: Normalised inputs by name, in the graph's input order.
        output_names: Graph outputs, in the wrapper's output order.
        tolerance: Largest allowed absolute difference.

    Returns:
        Max absolute difference per output.

    Raises:
        ExportParityError: An output differs by more than ``tolerance`` (or is not finite).
    """
    onnx_outputs = _onnx_outputs(session, feeds, output_names)
    with torch.no_grad():
        torch_outputs = wrapper(*[torch.from_numpy(feeds[name]) for name in feeds])
    differences: Dict[str, float] = {}
    n = len(next(iter(feeds.values())))
    for name, got, want in zip(output_names, onnx_outputs, torch_outputs):
        want = want.numpy()
        if got.shape != want.shape:
            raise ExportParityError(
                f"ONNX output '{name}' has shape {list(got.shape)}, torch {list(want.shape)}",
                float("inf"),
            )
        difference = np.abs(got.astype(np.float64) - want.astype(np.float64))
        differences[name] = float(np.max(difference)) if np.isfinite(difference).all() else np.inf
    worst = max(differences, key=differences.__getitem__)
    if not differences[worst] <= tolerance:
        raise ExportParityError(
            f"ONNX Runtime differs from torch on output '{worst}' by max abs diff "
            f"{differences[worst]:.3g} > tolerance {tolerance:g} ({n} tiles); the model was not "
            "written. Check the model for operations the ONNX exporter does not support.",
            differences[worst],
        )
    return differences


# --- what is exported ---------------------------------------------------------------------------


@dataclass
class _ExportPlan:
    wrapper: nn.Module  # positional sensor inputs, tuple outputs
    encoder: MsGFMEncoder  # its expert usage on the parity inputs is reported
    sensors: List[str]
    output_names: List[str]
    outputs: List[OutputSpec]
    task: str
    tile_size: int
    default_overlap: float
    config: ModelConfig
    spec: Optional[TaskSpec] = None


def _load_state(folder: Path) -> Dict[str, Any]:
    from safetensors.torch import load_file

    from ..checkpoints import WEIGHTS_FILE

    state = load_file(str(folder / WEIGHTS_FILE))
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _task_plan(folder: Path, meta: Dict[str, Any]) -> _ExportPlan:
    for key in ("model_config", "task_spec"):
        if key not in meta:
            raise ValueError(f"checkpoint {folder} meta.json has no {key!r}: not a task model")
    config = ModelConfig.from_dict(meta["model_config"])
    spec = TaskSpec.from_dict(meta["task_spec"])
    model = build_task_model(config, spec)
    try:
        model.load_state_dict(_load_state(folder), strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"checkpoint {folder} does not match its task_spec/model_config: {exc}"
        ) from None
    model.eval()
    wrapper = TaskExportWrapper(model).eval()
    outputs = task_outputs(spec, meta.get("normalization") or {})
    overlap = spec.task_type.export_overlap(DEFAULT_OVERLAP)
    return _ExportPlan(
        wrapper=wrapper,
        encoder=model.encoder,
        sensors=list(spec.sensors),
        output_names=[o.name for o in outputs],
        outputs=outputs,
        task=spec.task,
        tile_size=spec.image_size,
        default_overlap=overlap,
        config=model.config,
        spec=spec,
    )


def _embedding_plan(
    folder: Path, meta: Dict[str, Any], sensors: Optional[Sequence[str]], tile_size: Optional[int]
) -> _ExportPlan:
    encoder, config = _load_encoder(folder, meta)
    if not sensors:
        if len(encoder.sensors) > 1:
            raise ValueError(
                f"choose the encoder input sensor(s) to export (--sensor) among {encoder.sensors}"
            )
        sensors = encoder.sensors
    sensors = [s.lower() for s in sensors]
    unknown = [s for s in sensors if s not in encoder.embeddings]
    if unknown:
        raise ValueError(
            f"the pretrained encoder has no embedding for {unknown}; it has {encoder.sensors}"
        )
    tile = int(tile_size or config.image_size)
    stride = config.encoder_stride
    if tile % stride:
        raise ValueError(f"tile size {tile} must be a multiple of the encoder stride {stride}")
    wrapper = EmbeddingExportWrapper(encoder, sensors).eval()
    features = embedding_width(config)
    width = max(3, len(str(features - 1)))
    output = OutputSpec(
        name=EMBEDDING_OUTPUT,
        kind="embedding",
        bands=[f"feature_{i:0{width}d}" for i in range(features)],
        stride=stride,
    )
    # Windows overlap by whole embedding cells: a quarter of the tile, at least one cell.
    cells = tile // stride
    overlap_cells = max(1, round(DEFAULT_OVERLAP * cells)) if cells >= 3 else 0
    return _ExportPlan(
        wrapper=wrapper,
        encoder=encoder,
        sensors=sensors,
        output_names=[EMBEDDING_OUTPUT],
        outputs=[output],
        task="embedding",
        tile_size=tile,
        default_overlap=overlap_cells * stride / tile,
        config=config,
    )


def _load_encoder(folder: Path, meta: Mapping[str, Any]) -> Tuple[MsGFMEncoder, ModelConfig]:
    config = ModelConfig.from_dict(meta["model_config"])
    state = _load_state(folder)
    encoder = MsGFMEncoder(config)
    prefix = "encoder."
    for key in state:
        parts = key.split(".")
        if key.startswith(prefix + "embeddings.") and parts[2] not in encoder.embeddings:
            encoder.add_sensor(parts[2])  # a sensor added during pretraining
    encoder_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    encoder.load_state_dict(encoder_state, strict=True)
    return encoder.eval(), config


def load_pretrained_encoder(
    checkpoint_dir: Union[str, Path],
) -> Tuple[MsGFMEncoder, ModelConfig, Dict[str, Any]]:
    """The encoder of a pretraining checkpoint (eval mode), its config and its band statistics.

    Returns:
        ``(encoder, config, {sensor: {"mean", "std"}})``: the statistics it was trained with.
    """
    from ..checkpoints import META_FILE, resolve_checkpoint

    folder = resolve_checkpoint(checkpoint_dir)
    if folder is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir}")
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    if meta.get("task") != "pretrain":
        raise ValueError(f"{folder} is a {meta.get('task')!r} checkpoint, not a pretraining one")
    encoder, config = _load_encoder(folder, meta)
    return encoder, config, sensor_normalization(meta.get("normalization") or {})


def sensor_normalization(normalization: Mapping[str, Any]) -> Dict[str, Any]:
    """``{sensor: {"mean", "std"}}`` of a checkpoint's ``normalization``.

    A pretraining checkpoint nests its per-sensor statistics under ``"sensors"`` (the format of
    ``msgfm data stats``); a finetuning checkpoint keeps them at the top level.
    """
    nested = normalization.get("sensors")
    if isinstance(nested, Mapping):
        return dict(nested)
    return dict(normalization)


def _sensor_stats(sensor: str, normalization: Mapping[str, Any]) -> Tuple[List[float], List[float]]:
    entry = sensor_normalization(normalization).get(sensor)
    registry = get_sensor(sensor)
    if entry and "mean" in entry and "std" in entry:
        return [float(v) for v in entry["mean"]], [float(v) for v in entry["std"]]
    return list(registry.mean), list(registry.std)


def task_outputs(spec: TaskSpec, normalization: Mapping[str, Any]) -> List[OutputSpec]:
    """The output specs of a task model's graph (see the module docstring).

    Args:
        spec: The :class:`~backend.models.tasks.TaskSpec`.
        normalization: ``{sensor: {"mean", "std"}}`` of the checkpoint (registry defaults
            otherwise): the reflectance output's scale and offset.
    """
    if spec.task_type.has_classes:
        classes = [
            ClassInfo(value=v, name=n, color=c)
            for v, n, c in zip(spec.class_values, spec.class_names, spec.class_colors)
        ]
        stride = spec.task_type.class_stride(spec.image_size)
        label = "top class" if spec.multilabel else "class"
        return [
            OutputSpec(name="classes", kind="class", bands=[label], classes=classes, stride=stride),
            OutputSpec(
                name="probabilities",
                kind="probability",
                bands=list(spec.class_names),
                classes=classes,
                stride=stride,
                multilabel=bool(spec.multilabel),
            ),
        ]
    mean, std = _sensor_stats(spec.target_sensor, normalization)
    return [
        OutputSpec(
            name="reflectance",
            kind="reflectance",
            bands=list(spec.out_bands),
            scale=std,
            offset=mean,
            sensor=spec.target_sensor,
        )
    ]


class TaskExportWrapper(nn.Module):
    """A task model with positional sensor inputs and the exported outputs as a tuple.

    Args:
        model: A :class:`~backend.models.tasks.TaskModel` (exported in eval mode).
    """

    def __init__(self, model: TaskModel):
        super().__init__()
        self.model = model
        self.sensors = list(model.spec.sensors)
        self.has_classes = model.spec.task_type.has_classes
        self.multilabel = bool(model.spec.multilabel)

    def forward(self, *images: Tensor) -> Tuple[Tensor, ...]:
        output = self.model(dict(zip(self.sensors, images)))
        if self.has_classes:
            probabilities = output.sigmoid() if self.multilabel else output.softmax(dim=1)
            # The class and probability outputs carry the same values; two graph outputs need
            # two tensors.
            return probabilities, probabilities.clone()
        return (output,)


def _metadata(
    plan: _ExportPlan,
    meta: Dict[str, Any],
    model_name: Optional[str],
    model_version: Optional[str],
) -> ModelMetadata:
    from .. import __version__

    normalization = meta.get("normalization") or {}
    # Inputs some training samples had no data for (S2 patches without an S1 partner): the model
    # learned to run without them, fed as training fed them (checkpoint meta, from the split).
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    absent = data.get("absent_inputs") or {}
    inputs = []
    for sensor in plan.sensors:
        registry = get_sensor(sensor)
        mean, std = _sensor_stats(sensor, normalization)
        inputs.append(
            InputSpec(
                name=sensor,
                sensor=sensor,
                bands=list(registry.bands),
                mean=mean,
                std=std,
                resolution_m=float(registry.resolution_m),
                normalization=registry.normalization,
                # The first input is the reference grid of a run: never left out.
                optional=sensor != plan.sensors[0] and int(absent.get(sensor, 0)) > 0,
            )
        )
    name = model_name or f"msgfm-{plan.config.name}-{plan.task}-{'-'.join(plan.sensors)}"
    if not get_task(plan.task).exported:
        trained_on = "msGFM self-supervised pretraining"
        if isinstance(meta.get("manifest"), dict):
            sources = meta["manifest"].get("sources", [])
            trained_on += ": " + ", ".join(
                f"{s.get('name')} ({s.get('scenes')} scenes)" for s in sources
            )
        stages = ", ".join(str(s + 1) for s in embedding_stages(plan.config))
        description = (
            f"msGFM {plan.config.name} encoder, embeddings of {' + '.join(plan.sensors)}: "
            f"stage(s) {stages} pooled onto stride {plan.config.encoder_stride} px"
        )
    else:
        trained_on = str(meta.get("trained_on", ""))
        description = f"msGFM {plan.config.name} {plan.task} model on {' + '.join(plan.sensors)}"
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    extra: Dict[str, Any] = {
        "model_config": plan.config.to_dict(),
        "checkpoint_step": meta.get("step"),
    }
    if metrics:  # the finetuning run's validation (train-defaults puts test scores in its models)
        extra["metrics_split"] = "validation"
    if plan.spec is not None:
        extra["task_spec"] = plan.spec.to_dict()
        extra["init"] = meta.get("init", "none")
    return ModelMetadata(
        task=plan.task,
        inputs=inputs,
        outputs=plan.outputs,
        tile_size=plan.tile_size,
        default_overlap=plan.default_overlap,
        model_name=name,
        model_version=str(model_version or meta.get("msgfm_version") or __version__),
        trained_on=trained_on,
        metrics=dict(metrics),
        description=description,
        extra=extra,
        product_levels=trained_product_levels(plan.sensors, normalization)
        if get_task(plan.task).exported
        else {},
    )


def trained_product_levels(
    sensors: Sequence[str], normalization: Mapping[str, Any]
) -> Dict[str, List[str]]:
    """Per sensor, the processing levels a task model's statistics describe, where they are known:
    the levels an entry records (``product_levels``), else, for statistics equal to the
    registry's, the levels those describe (:data:`backend.sensors.STATISTICS_PRODUCT_LEVELS`).
    Statistics of unknown origin state none (a run then checks no level)."""
    from ..sensors import STATISTICS_PRODUCT_LEVELS
    from .bundled_metadata import same_statistics

    entries = sensor_normalization(normalization)
    levels = {}
    for sensor in sensors:
        entry = entries.get(sensor) or {}
        described = STATISTICS_PRODUCT_LEVELS.get(sensor)
        mean, std = _sensor_stats(sensor, normalization)
        registry = get_sensor(sensor)
        if entry.get("product_levels"):
            levels[sensor] = [str(level) for level in entry["product_levels"]]
        elif described and same_statistics(mean, std, registry.mean, registry.std):
            levels[sensor] = list(described)
    return levels


# --- ONNX mechanics -----------------------------------------------------------------------------


def _random_inputs(
    sensors: Sequence[str], batch: int, tile: int, seed: int
) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        s: rng.standard_normal((batch, get_sensor(s).num_bands, tile, tile)).astype(np.float32)
        for s in sensors
    }


def _parity_inputs(
    sample_inputs: Optional[Mapping[str, np.ndarray]],
    sensors: Sequence[str],
    tile: int,
    export_batch: int,
) -> Tuple[Dict[str, np.ndarray], str]:
    """Tiles for the parity check, never as many as the traced batch (the batch axis must be
    really dynamic, not a constant baked in by the tracer)."""
    if sample_inputs is None:
        return _random_inputs(sensors, export_batch + 1, tile, seed=1), "random normal"
    missing = [s for s in sensors if s not in sample_inputs]
    if missing:
        raise ValueError(f"sample inputs lack sensors {missing}; the model takes {list(sensors)}")
    feeds = {}
    for s in sensors:
        array = np.ascontiguousarray(sample_inputs[s], dtype=np.float32)
        expected = (get_sensor(s).num_bands, tile, tile)
        if array.ndim != 4 or array.shape[1:] != expected or len(array) == 0:
            raise ValueError(
                f"sample input {s!r} has shape {list(array.shape)}; expected [N, "
                f"{expected[0]}, {tile}, {tile}] normalised tiles"
            )
        feeds[s] = array
    counts = {len(a) for a in feeds.values()}
    if len(counts) != 1:
        raise ValueError(f"sample inputs must hold as many tiles per sensor, got {counts}")
    if counts.pop() == export_batch:
        feeds = {s: np.concatenate([a, a[:1]]) for s, a in feeds.items()}
    return feeds, "real tiles"


def _export_graph(
    wrapper: nn.Module,
    examples: Mapping[str, np.ndarray],
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
) -> None:
    tensors = tuple(torch.from_numpy(examples[name]) for name in input_names)
    dynamic_axes = {name: {0: "batch"} for name in list(input_names) + list(output_names)}
    # The parity check after the export is what proves the graph right.
    with torch.no_grad(), export_warnings_that_do_not_apply_ignored():
        torch.onnx.export(
            wrapper,
            tensors,
            str(path),
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )


def _open_session(path: Path) -> Any:
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _onnx_outputs(
    session: Any, feeds: Mapping[str, np.ndarray], output_names: Sequence[str]
) -> List[np.ndarray]:
    return session.run(list(output_names), dict(feeds))


def _write_metadata(path: Path, metadata: ModelMetadata) -> None:
    import onnx

    model = onnx.load(str(path))
    embed_metadata(model, metadata)
    # One self-contained file: weights inline, never external data.
    onnx.save(model, str(path), save_as_external_data=False)
