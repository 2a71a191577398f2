"""The msGFM ONNX model contract: the keys of ``metadata_props``, their types and their validation.

This module is the only place that knows the keys. Export writes them with :func:`to_metadata_props`,
the inference engine, the QGIS plugin and ``msgfm info`` read them with :func:`read_model_metadata`.
Every value is stored as JSON text (ONNX metadata values are strings).

It imports neither torch, onnx nor onnxruntime: a model's metadata is read from the file's bytes.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set

from ..conventions import json_safe
from ..tasks import MODEL_TASKS
from .external_data import ExternalDataError, check_external_data
from .metadata_text import clean_metadata
from .onnx_file import OnnxFileError, OnnxFileInfo, read_onnx_info

SCHEMA_VERSION = 1

TASKS = tuple(MODEL_TASKS)  # the registry's tasks, the encoder's embedding included
OUTPUT_KINDS = ("class", "probability", "reflectance", "embedding")
NORMALIZATIONS = ("mean_std", "per_tile")
REQUIRED_KEYS = (
    "schema_version",
    "task",
    "inputs",
    "outputs",
    "tile_size",
    "default_overlap",
    "model_name",
    "model_version",
)
# Optional keys written only when they hold something (a float model has no quantization record).
OMITTED_WHEN_EMPTY = ("quantization", "product_levels")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class ModelMetadataError(ValueError):
    """The model's metadata is missing, malformed or from an unsupported schema version."""

    def __init__(self, key: str, message: str):
        super().__init__(f"model metadata key '{key}': {message}")
        self.key = key


class ModelFileError(ValueError):
    """The file is not a readable ONNX model."""


@dataclass
class InputSpec:
    """One input tensor of the model: which sensor and bands it expects and how they are scaled.

    The tensor the model sees is ``(raw - mean) / std`` per band, ``raw`` being the sensor's values in
    the units of its registry entry (Sentinel-2 reflectance x 10000, SAR sigma0 in dB, DSM in m).
    With ``normalization == "per_tile"`` each tile is instead standardised by its own mean and std
    (used for elevation, whose absolute level carries no meaning for the model).

    ``optional`` says the model was trained with samples that had no data at all for this input
    (e.g. Sentinel-2 patches without a Sentinel-1 partner): training fed it as 0 after
    normalisation (the band means), so a run may leave it out and is fed the same. It is written by
    export from the training split's own samples, never set by hand, and left out of the stored
    metadata when false (older readers still read such models).
    """

    name: str
    sensor: str
    bands: List[str]
    mean: List[float]
    std: List[float]
    dtype: str = "float32"
    resolution_m: Optional[float] = None
    normalization: str = "mean_std"
    optional: bool = False

    def validate(self, key: str) -> None:
        _require(key, isinstance(self.name, str) and self.name, "input 'name' must be a string")
        _require(
            key, isinstance(self.sensor, str) and self.sensor, "input 'sensor' must be a string"
        )
        _require(key, _is_str_list(self.bands) and self.bands, "input 'bands' must list band names")
        n = len(self.bands)
        _require(key, _is_num_list(self.mean, n), f"input 'mean' must be {n} numbers")
        _require(key, _is_num_list(self.std, n), f"input 'std' must be {n} numbers")
        _require(key, all(s > 0 for s in self.std), "input 'std' values must be positive")
        _require(
            key, self.dtype in ("float32", "float16"), f"unsupported input dtype {self.dtype!r}"
        )
        _require(
            key,
            self.resolution_m is None or (_is_num(self.resolution_m) and self.resolution_m > 0),
            "input 'resolution_m' must be a positive number",
        )
        _require(
            key,
            self.normalization in NORMALIZATIONS,
            f"input 'normalization' must be one of {', '.join(NORMALIZATIONS)}",
        )
        _require(key, isinstance(self.optional, bool), "input 'optional' must be true or false")


@dataclass
class ClassInfo:
    """A class of a class or probability output: its raster value, name and display colour."""

    value: int
    name: str
    color: str = "#808080"


@dataclass
class OutputSpec:
    """One output tensor of the model.

    ``stride`` is the output cell size in input pixels: 1 for dense outputs on the input grid, the
    encoder's reduction (e.g. 32) for embeddings, ``tile_size`` for one prediction per tile (scene
    classification). Reflectance values in the sensor's units are ``raw * scale + offset`` per band.
    ``valid_range`` (optional, ``[min, max]`` in those units, ``null`` for no bound) is the physical
    range of a reflectance output: values beyond it are clipped (and counted) when written. It is
    left out of the stored metadata when not set, so readers that predate it read such models.
    """

    name: str
    kind: str
    bands: List[str]
    classes: List[ClassInfo] = field(default_factory=list)
    scale: List[float] = field(default_factory=list)
    offset: List[float] = field(default_factory=list)
    stride: int = 1
    multilabel: bool = False
    sensor: Optional[str] = None
    valid_range: Optional[List[Optional[float]]] = None

    def validate(self, key: str) -> None:
        _require(key, isinstance(self.name, str) and self.name, "output 'name' must be a string")
        _require(
            key,
            self.kind in OUTPUT_KINDS,
            f"output 'kind' must be one of {', '.join(OUTPUT_KINDS)}",
        )
        _require(
            key, _is_str_list(self.bands) and self.bands, "output 'bands' must list band names"
        )
        if self.kind in ("class", "probability"):
            _require(key, len(self.classes) > 0, f"a {self.kind} output must list its classes")
            values = [c.value for c in self.classes]
            _require(key, len(set(values)) == len(values), "class values must be unique")
            for c in self.classes:
                _require(key, isinstance(c.value, int) and 0 <= c.value <= 255, "class value 0-255")
                _require(key, isinstance(c.name, str) and c.name, "class 'name' must be a string")
                _require(key, bool(_COLOR.match(str(c.color))), "class 'color' must be '#rrggbb'")
        if self.kind == "probability":
            _require(
                key,
                len(self.bands) == len(self.classes),
                "a probability output has one band per class",
            )
        n = len(self.bands)
        _require(key, not self.scale or _is_num_list(self.scale, n), f"'scale' must be {n} numbers")
        _require(
            key, not self.offset or _is_num_list(self.offset, n), f"'offset' must be {n} numbers"
        )
        _require(
            key,
            isinstance(self.stride, int) and self.stride >= 1,
            "'stride' must be an integer >= 1",
        )
        if self.valid_range is not None:
            bounds = self.valid_range
            _require(
                key,
                isinstance(bounds, list)
                and len(bounds) == 2
                and all(b is None or _is_num(b) for b in bounds)
                and (None in bounds or bounds[0] < bounds[1]),
                "'valid_range' must be [min, max] (numbers or null, min < max)",
            )


@dataclass
class ModelMetadata:
    """Everything a consumer needs to run an msGFM ONNX model on rasters."""

    task: str
    inputs: List[InputSpec]
    outputs: List[OutputSpec]
    tile_size: int
    default_overlap: float
    model_name: str
    model_version: str
    trained_on: str = ""
    metrics: Dict[str, Any] = field(default_factory=dict)
    description: str = ""
    license: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)
    # How an int8 (or other reduced-precision) copy was made and what it costs against the float
    # model (see ``backend/export/quantize.py``); empty for a float model, and then not stored.
    quantization: Dict[str, Any] = field(default_factory=dict)
    # Per input sensor, the processing levels its statistics describe and the model was trained
    # on (``{"s2": ["L2A", "L3A"]}``: surface reflectance); a run on an input known to be of
    # another level (Sentinel-2 L1C) is refused. Written by export from the statistics; empty
    # (and not stored) for sensors without levels and models that never recorded them.
    product_levels: Dict[str, List[str]] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def validate(self) -> ModelMetadata:
        """Check every field; raise :class:`ModelMetadataError` naming the first bad key."""
        _require("schema_version", isinstance(self.schema_version, int), "must be an integer")
        if self.schema_version > SCHEMA_VERSION:
            raise ModelMetadataError(
                "schema_version",
                f"the model uses metadata schema {self.schema_version}, this msGFM version reads up "
                f"to {SCHEMA_VERSION}: update the msGFM plugin",
            )
        _require("schema_version", self.schema_version >= 1, "must be >= 1")
        _require(
            "task", self.task in TASKS, f"must be one of {', '.join(TASKS)}, not {self.task!r}"
        )
        _require("inputs", len(self.inputs) > 0, "the model must declare at least one input")
        for spec in self.inputs:
            spec.validate("inputs")
        names = [s.name for s in self.inputs]
        _require("inputs", len(set(names)) == len(names), "input names must be unique")
        _require(
            "inputs",
            not all(spec.optional for spec in self.inputs),
            "at least one input must be required (not 'optional')",
        )
        _require("outputs", len(self.outputs) > 0, "the model must declare at least one output")
        for spec in self.outputs:
            spec.validate("outputs")
        _require(
            "tile_size",
            isinstance(self.tile_size, int) and self.tile_size >= 8,
            "must be an integer >= 8 (pixels)",
        )
        _require(
            "default_overlap",
            _is_num(self.default_overlap) and 0 <= self.default_overlap < 1,
            "must be a fraction of the tile in [0, 1)",
        )
        for key in ("model_name", "model_version"):
            _require(
                key, isinstance(getattr(self, key), str) and getattr(self, key), "must be text"
            )
        _require("trained_on", isinstance(self.trained_on, str), "must be text")
        _require("metrics", isinstance(self.metrics, dict), "must be a JSON object")
        _require("quantization", isinstance(self.quantization, dict), "must be a JSON object")
        _require(
            "product_levels",
            isinstance(self.product_levels, dict)
            and all(
                sensor in self.sensors and _is_str_list(levels) and levels
                for sensor, levels in self.product_levels.items()
            ),
            'must map input sensors to lists of product levels (e.g. {"s2": ["L2A"]})',
        )
        if self.quantization:
            _require(
                "quantization",
                isinstance(self.quantization.get("weights"), str)
                and isinstance(self.quantization.get("parity"), dict),
                "must give 'weights' (e.g. \"int8\") and the 'parity' measured against the float "
                "model",
            )
        return self

    def input(self, sensor: str) -> InputSpec:
        """The input spec for ``sensor``."""
        for spec in self.inputs:
            if spec.sensor == sensor:
                return spec
        raise KeyError(f"the model has no {sensor!r} input (it takes {self.sensors})")

    @property
    def sensors(self) -> List[str]:
        return [s.sensor for s in self.inputs]

    @property
    def optional_sensors(self) -> List[str]:
        """The inputs a run may leave out: the model was trained with samples without them."""
        return [s.sensor for s in self.inputs if s.optional]

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def to_metadata_props(metadata: ModelMetadata) -> Dict[str, str]:
    """Validate ``metadata`` and serialise it as ONNX ``metadata_props`` (key -> JSON text)."""
    metadata.validate()
    values = metadata.to_dict()
    for spec in values["inputs"]:
        if not spec.get("optional"):
            spec.pop("optional", None)  # optional: absent, older readers still read it
    for output in values["outputs"]:
        if output.get("valid_range") is None:
            output.pop("valid_range", None)  # optional: absent, older readers still read it
    return {
        key: json.dumps(json_safe(value), allow_nan=False)  # an undefined score is null
        for key, value in values.items()
        if value or key not in OMITTED_WHEN_EMPTY
    }


def from_metadata_props(props: Mapping[str, str]) -> ModelMetadata:
    """Parse and validate ONNX ``metadata_props``; errors name the offending key."""
    if "schema_version" not in props:
        raise ModelMetadataError(
            "schema_version",
            "missing: this ONNX file is not an msGFM model (export it with `msgfm export`)",
        )
    values: Dict[str, Any] = {}
    for key in REQUIRED_KEYS:
        if key not in props:
            raise ModelMetadataError(key, "missing")
    for key, text in props.items():
        if key not in ModelMetadata.__dataclass_fields__:
            continue  # other tools' keys (producer notes...) are allowed and ignored
        try:
            values[key] = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ModelMetadataError(key, f"is not valid JSON ({exc})") from None
    try:
        inputs = [InputSpec(**_as_object("inputs", item)) for item in _as_list("inputs", values)]
        outputs = []
        for item in _as_list("outputs", values):
            item = dict(_as_object("outputs", item))
            classes = item.pop("classes", [])
            if not isinstance(classes, list):
                raise ModelMetadataError("outputs", "'classes' must be a list")
            item["classes"] = [ClassInfo(**_as_object("outputs", c)) for c in classes]
            outputs.append(OutputSpec(**item))
    except TypeError as exc:  # unknown or missing field inside an input/output/class object
        raise ModelMetadataError("inputs/outputs", str(exc)) from None
    values["inputs"], values["outputs"] = inputs, outputs
    for key, kind in (("tile_size", int), ("schema_version", int)):
        if not isinstance(values[key], kind) or isinstance(values[key], bool):
            raise ModelMetadataError(key, f"must be an integer, not {values[key]!r}")
    metadata = ModelMetadata(**values).validate()
    try:
        return clean_metadata(metadata)
    except ValueError as exc:
        raise ModelMetadataError(*exc.args) from None


def read_model_metadata(path: str | Path, session: Any = None) -> ModelMetadata:
    """Read and validate the metadata of the ONNX model at ``path``.

    The file's metadata and graph declarations are read from its bytes
    (:mod:`.onnx_file`): no ONNX Runtime session is built, so checking a model before a run costs
    milliseconds and the run opens the only session.

    Args:
        path: the ``.onnx`` file.
        session: an ``onnxruntime.InferenceSession`` already open on ``path``: its metadata and
            graph are used instead of reading the file again.

    Raises:
        ModelFileError: the file is missing or is not an ONNX model.
        ModelMetadataError: the model's msGFM metadata is missing or invalid.
    """
    path = Path(path)
    if session is not None:
        props = session.get_modelmeta().custom_metadata_map
        graph_inputs = {i.name: i.shape for i in session.get_inputs()}
        graph_outputs = {o.name for o in session.get_outputs()}
    else:
        if path.is_file():  # a missing file is read_model_file's clear error
            try:
                check_external_data(path)  # an untrusted model is refused before anything else
            except ExternalDataError as exc:
                raise ModelFileError(str(exc)) from None
        info = read_model_file(path)
        props = info.metadata_props
        graph_inputs = {i.name: i.shape for i in info.inputs}
        graph_outputs = {o.name for o in info.outputs}
    metadata = from_metadata_props(props)
    _check_graph(metadata, graph_inputs, graph_outputs, path)
    return metadata


def read_model_file(path: str | Path) -> OnnxFileInfo:
    """The metadata and graph declarations of the ONNX file at ``path``, without onnxruntime.

    Raises:
        ModelFileError: the file is missing or is not an ONNX model.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        return read_onnx_info(path)
    except (OSError, OnnxFileError) as exc:
        raise ModelFileError(
            f"{path.name} is not a valid ONNX model ({exc}); choose an .onnx file exported "
            "by `msgfm export`"
        ) from None


def _check_graph(
    metadata: ModelMetadata,
    graph_inputs: Mapping[str, Optional[List[Any]]],
    graph_outputs: Set[str],
    path: Path,
) -> None:
    for spec in metadata.inputs:
        if spec.name not in graph_inputs:
            raise ModelMetadataError(
                "inputs", f"declares input {spec.name!r} that {path.name} does not have"
            )
        shape = graph_inputs[spec.name] or []
        if len(shape) == 4 and isinstance(shape[1], int) and shape[1] != len(spec.bands):
            raise ModelMetadataError(
                "inputs",
                f"input {spec.name!r} lists {len(spec.bands)} bands but the graph takes {shape[1]}",
            )
    for spec in metadata.outputs:
        if spec.name not in graph_outputs:
            raise ModelMetadataError(
                "outputs", f"declares output {spec.name!r} that {path.name} does not have"
            )


def _require(key: str, condition: Any, message: str) -> None:
    if not condition:
        raise ModelMetadataError(key, message)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_num_list(values: Any, n: int) -> bool:
    return isinstance(values, list) and len(values) == n and all(_is_num(v) for v in values)


def _is_str_list(values: Any) -> bool:
    return isinstance(values, list) and all(isinstance(v, str) and v for v in values)


def _as_list(key: str, values: Mapping[str, Any]) -> list:
    value = values.get(key)
    if not isinstance(value, list):
        raise ModelMetadataError(key, "must be a JSON list")
    return value


def _as_object(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ModelMetadataError(key, "each entry must be a JSON object")
    return value


def embed_metadata(model_proto: Any, metadata: ModelMetadata) -> None:
    """Replace the ``metadata_props`` of an ``onnx.ModelProto`` with ``metadata`` (validated)."""
    props = to_metadata_props(metadata)
    del model_proto.metadata_props[:]
    for key, value in sorted(props.items()):
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value
