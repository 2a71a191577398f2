"""Downstream task models: the msGFM encoder with a task head, their losses and finetuning helpers.

A :class:`TaskSpec` says what a task model takes and gives (input sensors, classes or output
bands, tile size); :func:`build_task_model` builds it on a :class:`~.config.ModelConfig`, whose
``sensors`` are replaced by the spec's input sensors (a task model embeds only what it reads).
Several co-registered input sensors are fused by summing their patch embeddings.

Every task model takes *normalised* images ``{sensor: (B, C, H, W)}`` and returns:

- classification: logits ``(B, K)``;
- segmentation: logits ``(B, K, H, W)`` at input resolution;
- cloud removal: normalised target-sensor (S2) reflectance ``(B, C, H, W)``, a residual on the
  cloudy S2 input;
- pan-sharpening: normalised MS ``(B, C, H, W)``, a residual on the Brovey transform of the pan
  and upsampled MS inputs (computed in the graph; see :class:`~.heads.BroveyResidualImageHead`).

After each forward, ``model.aux_loss`` holds the encoder's MoE load-balancing loss; a trainer adds
``config.aux_loss_weight * model.aux_loss`` to :func:`task_loss`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..conventions import IGNORE_INDEX
from ..sensors import get_sensor
from ..tasks import TASKS, Task, get_task
from .config import ModelConfig
from .embedding import SensorPatchEmbedding, init_from_nearest_bands
from .encoder import MsGFMEncoder
from .heads import (
    BroveyResidualImageHead,
    ClassificationHead,
    GatedResidualImageHead,
    ResidualImageHead,
    SegmentationHead,
)

INIT_MODES = ("nearest", "random")

# Distinct, colour-blind-friendly-ish defaults for class rasters (cycled beyond 12 classes).
DEFAULT_CLASS_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78",
)  # fmt: skip


@dataclass
class TaskSpec:
    """What a downstream task model takes and gives.

    Attributes:
        task: ``classification``, ``segmentation``, ``cloud-removal`` or ``pansharpening``.
        sensors: Input sensors, in order (co-registered inputs are fused by summing embeddings).
        num_classes: Classes of a classification or segmentation task (None otherwise).
        class_names: One name per class (default ``class 0`` ...).
        class_colors: One ``#rrggbb`` colour per class.
        class_values: Raster value written for each class (default ``0 .. K-1``; 255 is the
            segmentation ignore index and cannot be a class value).
        multilabel: Scene classification with several labels per scene (sigmoid, BCE).
        target_sensor: Sensor of the output image (``s2`` for cloud removal, ``ms`` for
            pan-sharpening); it must also be an input (the residual's base).
        out_bands: Output band names (default: the target sensor's bands).
        image_size: Training and export tile size in pixels.
    """

    task: str
    sensors: List[str]
    num_classes: Optional[int] = None
    class_names: List[str] = field(default_factory=list)
    class_colors: List[str] = field(default_factory=list)
    class_values: List[int] = field(default_factory=list)
    multilabel: bool = False
    target_sensor: Optional[str] = None
    out_bands: List[str] = field(default_factory=list)
    image_size: int = 96

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if isinstance(self.sensors, str):
            self.sensors = [self.sensors]
        self.sensors = [str(s).lower() for s in self.sensors]
        if not self.sensors or len(set(self.sensors)) != len(self.sensors):
            raise ValueError(
                f"task {self.task}: sensors must list distinct sensors: {self.sensors}"
            )
        for sensor in self.sensors:
            get_sensor(sensor)  # KeyError naming the known sensors
        self.image_size = int(self.image_size)
        if self.image_size < 32:
            raise ValueError(f"task {self.task}: image_size {self.image_size} must be >= 32 px")
        if self.task_type.has_classes:
            self._complete_classes()
        else:
            self._complete_image_output()

    def _complete_classes(self) -> None:
        k = self.num_classes if self.num_classes is not None else len(self.class_names)
        if not k or k < self.task_type.min_classes:
            raise ValueError(
                f"task {self.task} needs num_classes (or class_names); segmentation needs >= 2"
            )
        self.num_classes = int(k)
        self.class_names = list(self.class_names) or [f"class {i}" for i in range(k)]
        self.class_colors = list(self.class_colors) or [
            DEFAULT_CLASS_COLORS[i % len(DEFAULT_CLASS_COLORS)] for i in range(k)
        ]
        self.class_values = [int(v) for v in self.class_values] or list(range(k))
        for label, values in (
            ("class_names", self.class_names),
            ("class_colors", self.class_colors),
            ("class_values", self.class_values),
        ):
            if len(values) != k:
                raise ValueError(f"task {self.task}: {label} has {len(values)} entries for {k}")
        if len(set(self.class_values)) != k or not all(
            0 <= v < IGNORE_INDEX for v in self.class_values
        ):
            raise ValueError(
                f"task {self.task}: class_values {self.class_values} must be distinct, 0-254"
            )
        if self.multilabel and not self.task_type.multilabel_capable:
            raise ValueError("multilabel applies to scene classification only")
        if self.target_sensor is not None or self.out_bands:
            raise ValueError(f"task {self.task} has classes, not target_sensor/out_bands")

    def _complete_image_output(self) -> None:
        self.target_sensor = (self.target_sensor or self.task_type.target_sensor).lower()
        if self.target_sensor not in self.sensors:
            raise ValueError(
                f"task {self.task}: the target sensor {self.target_sensor!r} must be one of the "
                f"inputs {self.sensors} (the model predicts a correction of that input)"
            )
        bands = list(get_sensor(self.target_sensor).bands)
        self.out_bands = list(self.out_bands) or bands
        if self.out_bands != bands:
            raise ValueError(
                f"task {self.task}: out_bands {self.out_bands} must be the {self.target_sensor} "
                f"bands {bands}"
            )
        if self.num_classes is not None or self.class_names or self.multilabel:
            raise ValueError(f"task {self.task} outputs an image, not classes")

    @property
    def task_type(self) -> Task:
        """The registered task (:mod:`backend.tasks`) this spec is a model of."""
        return get_task(self.task)

    @property
    def out_channels(self) -> int:
        """Logits per pixel or scene (classes), or output bands."""
        return int(self.num_classes) if self.task_type.has_classes else len(self.out_bands)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dictionary (round-trips through :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> TaskSpec:
        """Build a spec from :meth:`to_dict` output; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown task spec keys {unknown}; known keys are {sorted(known)}")
        return cls(**data)


def _residual_image_head(config: ModelConfig, spec: TaskSpec, channels: int) -> nn.Module:
    image_channels = sum(get_sensor(s).num_bands for s in spec.sensors)
    return ResidualImageHead(config.stage_dims, image_channels, spec.out_channels, channels)


def _gated_residual_image_head(config: ModelConfig, spec: TaskSpec, channels: int) -> nn.Module:
    image_channels = sum(get_sensor(s).num_bands for s in spec.sensors)
    return GatedResidualImageHead(config.stage_dims, image_channels, spec.out_channels, channels)


def _pan_input(spec: TaskSpec) -> tuple:
    """``(sensor, channel)`` of the pan band: the first one-band input that is not the target."""
    channel = 0
    for sensor in spec.sensors:
        if sensor != spec.target_sensor and get_sensor(sensor).num_bands == 1:
            return sensor, channel
        channel += get_sensor(sensor).num_bands
    raise ValueError(
        f"task {spec.task}: a Brovey head needs a one-band pan input beside "
        f"{spec.target_sensor}; the inputs are {spec.sensors}"
    )


def _brovey_residual_image_head(config: ModelConfig, spec: TaskSpec, channels: int) -> nn.Module:
    image_channels = sum(get_sensor(s).num_bands for s in spec.sensors)
    pan_sensor, pan_channel = _pan_input(spec)
    head = BroveyResidualImageHead(
        config.stage_dims, image_channels, spec.out_channels, channels, pan_channel=pan_channel
    )
    pan, ms = get_sensor(pan_sensor), get_sensor(spec.target_sensor)
    head.set_statistics(pan.mean, pan.std, ms.mean, ms.std)
    return head


# The head each task declares (``Task.head``), built from the encoder config, spec and FPN width.
HEADS = {
    "classification": lambda config, spec, channels: ClassificationHead(
        config.stage_dims, spec.out_channels
    ),
    "segmentation": lambda config, spec, channels: SegmentationHead(
        config.stage_dims, spec.out_channels, channels, config.patch_size
    ),
    "residual-image": _residual_image_head,
    "gated-residual-image": _gated_residual_image_head,
    "brovey-residual-image": _brovey_residual_image_head,
}


class TaskModel(nn.Module):
    """Encoder + task head (see the module docstring for inputs and outputs).

    Args:
        config: Encoder sizes; its sensors are the spec's input sensors.
        spec: The task.
        head_channels: FPN width of dense heads (default: the first stage's width, at least 32).
    """

    def __init__(self, config: ModelConfig, spec: TaskSpec, head_channels: Optional[int] = None):
        super().__init__()
        self.spec = spec
        self.encoder = MsGFMEncoder(config)
        self.config = self.encoder.config
        dims = self.config.stage_dims
        channels = head_channels or max(32, dims[0])
        self.head: nn.Module = HEADS[spec.task_type.head](config, spec, channels)
        self.encoder_frozen = False
        self.aux_loss: Tensor = torch.zeros(())

    def forward(self, inputs: Dict[str, Tensor]) -> Tensor:
        missing = [s for s in self.spec.sensors if s not in inputs]
        if missing:
            raise KeyError(
                f"{self.spec.task} model needs inputs {self.spec.sensors}; missing {missing}"
            )
        images = {s: inputs[s] for s in self.spec.sensors}
        encoded = self.encoder(images)
        self.aux_loss = encoded.aux_loss
        if self.spec.task_type.has_classes:
            return self.head(encoded.features)
        stacked = torch.cat([images[s] for s in self.spec.sensors], dim=1)
        return self.head(encoded.features, stacked, images[self.spec.target_sensor])

    def set_normalization(self, normalization: Dict[str, Any]) -> None:
        """Tell a head that works in sensor units the statistics the inputs are normalised with
        (``{sensor: {"mean", "std"}}``, the trainer's); other heads need none."""
        head = self.head
        if isinstance(head, BroveyResidualImageHead):
            pan, _ = _pan_input(self.spec)
            head.set_statistics(
                normalization[pan]["mean"],
                normalization[pan]["std"],
                normalization[self.spec.target_sensor]["mean"],
                normalization[self.spec.target_sensor]["std"],
            )

    def train(self, mode: bool = True) -> TaskModel:
        super().train(mode)
        if self.encoder_frozen:
            # A linear probe's encoder is a fixed feature extractor: no stochastic depth, and
            # the capacity-free MoE dispatch it will be exported with.
            self.encoder.eval()
        return self


def build_task_model(config: ModelConfig, spec: TaskSpec) -> TaskModel:
    """Build a task model whose encoder embeds exactly the spec's input sensors.

    Args:
        config: Encoder sizes (a pretraining checkpoint's ``model_config`` or a named config).
        spec: The task.

    Returns:
        A :class:`TaskModel` with randomly initialised weights
        (see :func:`load_pretrained_encoder`).
    """
    if spec.image_size % config.encoder_stride:
        raise ValueError(
            f"task image_size {spec.image_size} must be a multiple of the encoder stride "
            f"{config.encoder_stride} of config {config.name!r}"
        )
    config = dataclasses.replace(config, sensors=list(spec.sensors))
    return TaskModel(config, spec)


# --- losses -------------------------------------------------------------------------------------


def task_loss(
    spec: TaskSpec,
    output: Tensor,
    target: Tensor,
    valid: Optional[Tensor] = None,
    target_mean: Optional[Sequence[float]] = None,
    target_std: Optional[Sequence[float]] = None,
    class_weights: Optional[Sequence[float]] = None,
) -> Tensor:
    """The finetuning loss of a task.

    Args:
        spec: The task.
        output: The model's output (see the module docstring).
        target: Classification: multi-hot ``(B, K)`` (multi-label) or class indexes ``(B,)``
            (a one-hot ``(B, K)`` is accepted); segmentation: class indexes ``(B, H, W)`` with
            255 ignored; image tasks: ``(B, C, H, W)`` *normalised* reference, NaN where unknown
            (or raw values together with ``target_mean``/``target_std``).
        valid: Image tasks: optional ``(B, H, W)`` bool, False for pixels left out of the loss.
        target_mean: Image tasks: per-band mean to normalise a raw ``target`` with.
        target_std: Image tasks: per-band std to normalise a raw ``target`` with.
        class_weights: Single-label classification and segmentation: one cross-entropy weight
            per class (class-balanced loss); None = equal weights.

    Returns:
        Scalar loss: BCE-with-logits or cross-entropy (classes), cross-entropy ignoring 255
        (segmentation), mean L1 over valid pixels of normalised values (image tasks).
    """
    task = spec.task_type
    weight = (
        None
        if class_weights is None
        else torch.as_tensor(class_weights, dtype=output.dtype, device=output.device)
    )
    if weight is not None and (not task.has_classes or spec.multilabel):
        raise ValueError("class_weights apply to single-label classification and segmentation")
    if task.scene_level:
        if spec.multilabel:
            return F.binary_cross_entropy_with_logits(output, target.to(output.dtype))
        if target.ndim == 2:
            target = target.argmax(dim=1)
        return F.cross_entropy(output, target.long(), weight=weight)
    if task.has_classes:
        target = target.long()
        if not (target != IGNORE_INDEX).any():
            return output.sum() * 0.0  # nothing labelled: no gradient, not NaN
        return F.cross_entropy(output, target, weight=weight, ignore_index=IGNORE_INDEX)
    target = target.to(output.dtype)
    if target_mean is not None or target_std is not None:
        if target_mean is None or target_std is None:
            raise ValueError("give both target_mean and target_std to normalise the target")
        mean = torch.as_tensor(target_mean, dtype=output.dtype, device=output.device)
        std = torch.as_tensor(target_std, dtype=output.dtype, device=output.device)
        target = (target - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    mask = torch.isfinite(target)
    if valid is not None:
        mask = mask & valid.to(torch.bool).unsqueeze(1)
    if not mask.any():
        return output.sum() * 0.0
    difference = (output - torch.nan_to_num(target)).abs()
    return difference[mask].mean()


def cloud_weight_loss(
    probability: Tensor, opacity: Tensor, valid: Optional[Tensor] = None
) -> Tensor:
    """Binary cross-entropy of a gated head's cloud probability against the cloud opacity.

    Args:
        probability: ``(B, H, W)`` predicted cloud probability in [0, 1].
        opacity: ``(B, H, W)`` simulated opacity in [0, 1] (or a 0/1 cloud mask of real pairs).
        valid: Optional ``(B, H, W)`` bool, False for pixels left out.

    Returns:
        The mean over valid pixels (0 with a gradient path when none is valid).
    """
    opacity = opacity.to(probability.dtype).clamp(0.0, 1.0)
    # BCE in fp32 with the probability kept off 0 and 1 (the gate's sigmoid saturates).
    loss = F.binary_cross_entropy(
        probability.float().clamp(1e-6, 1 - 1e-6), opacity.float(), reduction="none"
    )
    if valid is not None:
        mask = valid.to(torch.bool)
        if not mask.any():
            return probability.sum() * 0.0
        return loss[mask].mean()
    return loss.mean()


def spectral_angle_loss(
    output: Tensor,
    target: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    valid: Optional[Tensor] = None,
) -> Tensor:
    """Mean spectral angle (radians) between output and reference spectra, in sensor units.

    L1 on normalised bands weighs each band's error on its own and says nothing of the spectrum's
    shape; the angle is what SAM scores (offsets matter, so both images are taken back to the
    sensor's units with ``mean``/``std`` first).

    Args:
        output: Normalised image ``(B, C, H, W)``.
        target: Normalised reference ``(B, C, H, W)``, NaN where unknown.
        mean: Per-band mean of the normalisation.
        std: Per-band std of the normalisation.
        valid: Optional ``(B, H, W)`` bool, False for pixels left out.
    """
    shift = torch.as_tensor(mean, dtype=output.dtype, device=output.device).view(1, -1, 1, 1)
    scale = torch.as_tensor(std, dtype=output.dtype, device=output.device).view(1, -1, 1, 1)
    mask = torch.isfinite(target).all(dim=1)
    if valid is not None:
        mask = mask & valid.to(torch.bool)
    predicted = output * scale + shift
    reference = torch.nan_to_num(target) * scale + shift
    dot = (predicted * reference).sum(dim=1)
    norms = predicted.norm(dim=1) * reference.norm(dim=1)
    mask = mask & (norms > 0)
    if not mask.any():
        return output.sum() * 0.0
    cosine = (dot[mask] / norms[mask]).clamp(-1.0 + 1e-6, 1.0 - 1e-6)
    return torch.acos(cosine).mean()


# --- pretrained weights -------------------------------------------------------------------------


def nearest_pretrained_sensor(sensor: str, candidates: Sequence[str]) -> Optional[str]:
    """The candidate sensor whose bands are nearest by wavelength to ``sensor``'s bands.

    The score is the mean, over ``sensor``'s bands, of the distance to the nearest candidate band
    (same-named bands count as 0). Sensors without wavelengths (SAR, elevation) match nothing.

    Returns:
        The best candidate, or None when no candidate can be matched.
    """
    target = get_sensor(sensor)
    if target.wavelengths_nm is None:
        return None
    best, best_score = None, math.inf
    for name in candidates:
        source = get_sensor(name)
        if source.wavelengths_nm is None:
            continue
        distances = [
            0.0 if band in source.bands else min(abs(w - s) for s in source.wavelengths_nm)
            for band, w in zip(target.bands, target.wavelengths_nm)
        ]
        score = sum(distances) / len(distances)
        if score < best_score:
            best, best_score = name, score
    return best


def load_pretrained_encoder(
    model: TaskModel, checkpoint_dir: Union[str, Path], init_new_sensors: str = "nearest"
) -> Dict[str, Any]:
    """Load a pretraining (or finetuning) checkpoint's encoder weights into ``model.encoder``.

    The shared Swin body and the embeddings of sensors the checkpoint has are loaded; decoders
    and heads are not. A sensor of the model that the checkpoint lacks (``landsat``, ``ms``,
    ``pan``) gets a patch embedding initialised from the pretrained sensor with the nearest bands
    by wavelength (``init_new_sensors="nearest"``), or keeps its random one.

    Args:
        model: A task model (from :func:`build_task_model`).
        checkpoint_dir: A checkpoint folder (``model.safetensors`` + ``meta.json``) or a run's
            output folder.
        init_new_sensors: ``nearest`` or ``random``.

    Returns:
        ``{"checkpoint", "task", "loaded": [sensors], "initialised_from": {sensor: source},
        "random": [sensors]}``, for the finetuning checkpoint's ``meta.json``.
    """
    from safetensors.torch import load_file

    from ..checkpoints import META_FILE, WEIGHTS_FILE, resolve_checkpoint

    if init_new_sensors not in INIT_MODES:
        raise ValueError(f"init_new_sensors must be one of {INIT_MODES}, not {init_new_sensors!r}")
    folder = resolve_checkpoint(checkpoint_dir)
    if folder is None:
        raise FileNotFoundError(
            f"no checkpoint in {checkpoint_dir}: expected {WEIGHTS_FILE} and {META_FILE} there "
            "or in its checkpoint-last folder; point --init at a pretraining run's output"
        )
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    state = load_file(str(folder / WEIGHTS_FILE))
    prefix = "module.encoder." if any(k.startswith("module.") for k in state) else "encoder."
    encoder_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not encoder_state:
        raise ValueError(f"checkpoint {folder} holds no encoder weights (no '{prefix}*' keys)")
    pretrained_sensors = sorted(
        {k.split(".")[1] for k in encoder_state if k.startswith("embeddings.")}
    )

    encoder = model.encoder
    own = encoder.state_dict()
    loadable = {}
    for key, value in encoder_state.items():
        if key.startswith("embeddings.") and key.split(".")[1] not in encoder.embeddings:
            continue  # a pretrained sensor this task does not read
        if key not in own:
            raise ValueError(f"checkpoint {folder} has encoder weight {key!r} the model lacks")
        if own[key].shape != value.shape:
            raise ValueError(
                f"checkpoint {folder} encoder weight {key!r} is {tuple(value.shape)}, the model's "
                f"is {tuple(own[key].shape)}: build the task model with the checkpoint's "
                f"model_config ({meta.get('model_config', {}).get('name', 'unknown')!r})"
            )
        loadable[key] = value
    missing_body = [k for k in own if not k.startswith("embeddings.") and k not in loadable]
    if missing_body:
        raise ValueError(
            f"checkpoint {folder} lacks encoder weights {missing_body[:3]}...: it is not an "
            "msGFM encoder of this model's configuration"
        )
    encoder.load_state_dict(loadable, strict=False)

    report: Dict[str, Any] = {
        "checkpoint": str(folder),
        "task": meta.get("task", "unknown"),
        "loaded": [],
        "initialised_from": {},
        "random": [],
    }
    embed_dim, patch = encoder.config.embed_dim, encoder.config.patch_size
    for sensor in encoder.sensors:
        if sensor in pretrained_sensors:
            report["loaded"].append(sensor)
            continue
        source = (
            nearest_pretrained_sensor(sensor, pretrained_sensors)
            if init_new_sensors == "nearest"
            else None
        )
        if source is None:
            report["random"].append(sensor)
            continue
        pretrained = SensorPatchEmbedding(get_sensor(source), embed_dim, patch)
        pretrained.load_state_dict(
            {
                k[len(f"embeddings.{source}.") :]: v
                for k, v in encoder_state.items()
                if k.startswith(f"embeddings.{source}.")
            }
        )
        init_from_nearest_bands(
            encoder.embeddings[sensor], get_sensor(sensor), pretrained, get_sensor(source)
        )
        report["initialised_from"][sensor] = source
    return report


# --- finetuning helpers -------------------------------------------------------------------------


def encoder_layer_id(name: str, depths: Sequence[int]) -> int:
    """Depth of an encoder parameter for layer-wise lr decay (0 = embeddings, N = last block).

    Patch merging and a stage's output norm belong to the stage's last block.
    """
    parts = name.split(".")
    if parts[0] in ("embeddings", "mask_token"):
        return 0
    if parts[0] == "stages":
        stage = int(parts[1])
        if parts[2] == "blocks":
            return sum(depths[:stage]) + int(parts[3]) + 1
        return sum(depths[: stage + 1])
    if parts[0] == "out_norms":
        return sum(depths[: int(parts[1]) + 1])
    return sum(depths)


def _no_weight_decay(name: str, parameter: Tensor) -> bool:
    # As in the pretraining trainer: no decay on norms, biases, learned tokens, position tables.
    return parameter.ndim <= 1 or name.endswith("token") or "position" in name


def param_groups_lrd(
    model: TaskModel,
    base_lr: float,
    weight_decay: float,
    layer_decay: float,
    not_pretrained: Sequence[str] = (),
) -> List[Dict[str, Any]]:
    """AdamW parameter groups with layer-wise learning-rate decay.

    Encoder parameters at depth ``l`` (see :func:`encoder_layer_id`) get
    ``base_lr * layer_decay ** (depth + 1 - l)``, ``depth`` being the number of blocks; the head
    gets ``base_lr``. Frozen parameters are left out. Layer decay protects what pretraining
    learned, so parameters that were not pretrained (names starting with a ``not_pretrained``
    prefix, e.g. a new sensor's randomly initialised patch embedding) learn at ``base_lr``.

    Returns:
        Groups with ``params``, ``lr``, ``weight_decay``, ``lr_scale`` and ``name``.
    """
    depths = model.encoder.config.depths
    num_layers = sum(depths) + 1
    groups: Dict[str, Dict[str, Any]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if name.startswith("encoder.") and not name.startswith(tuple(not_pretrained)):
            layer = encoder_layer_id(name[len("encoder.") :], depths)
        else:
            layer = num_layers
        decay = 0.0 if _no_weight_decay(name, parameter) else weight_decay
        key = f"layer{layer}_{'decay' if decay else 'no_decay'}"
        if key not in groups:
            scale = layer_decay ** (num_layers - layer)
            groups[key] = {
                "name": key,
                "params": [],
                "lr": base_lr * scale,
                "lr_scale": scale,
                "weight_decay": decay,
            }
        groups[key]["params"].append(parameter)
    return list(groups.values())


def freeze_encoder(model: TaskModel) -> None:
    """Linear probe: the encoder stops learning and stays in eval mode; only the head trains."""
    for parameter in model.encoder.parameters():
        parameter.requires_grad_(False)
    model.encoder_frozen = True
    model.encoder.eval()
