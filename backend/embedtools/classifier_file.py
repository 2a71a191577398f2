"""The classifier file: a fitted classifier, the features it needs and its classes, as JSON.

One set of labels maps many scenes: ``msgfm:classifywithexamples`` saves the classifier, and
``msgfm:applyclassifier`` loads it and runs it on other scenes. The file names the embedding model
it was fitted on (name, version, SHA-256 of the .onnx file, sensor, bands, stride, features),
because the classifier's weights mean nothing on another encoder's features; applying it with
another encoder is refused. A classifier fitted on the pixel's bands only needs no encoder: the
file holds the input's sensor, bands and band normalisation (``input``), which is all it needs.

Versions: 1 (encoder features; logistic or k-NN), 2 (adds ``input``, ``features`` and the random
forest), 3 (``encoder`` is null for a classifier on the bands only: they are read as the sensor
registry says, with no model file). Version 1 and 2 files still load.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ..class_colours import class_colours
from ..export.schema import InputSpec, ModelMetadata
from ..files import sha256_file, write_text_atomically
from .bands_only import reading_metadata
from .classifier import FittedClassifier, LogisticRegression, NearestNeighbours, Standardizer
from .features import FeatureLayout, embedding_stride
from .forest import RandomForest

FORMAT = "msgfm-classifier"
# The name a reading of the bands as the file records them takes where messages name a model.
FILE_READER_NAME = "the classifier file"
VERSION = 3
# What a pixel's feature vector is made of (the tools' FEATURES choice).
BANDS_ONLY = "bands"
EMBEDDING_AND_BANDS = "embedding+bands"
EMBEDDING_ONLY = "embedding"


def features_of(layout: FeatureLayout) -> str:
    """The feature kind of a layout: bands only, embedding + bands, or embedding only."""
    if layout.embedding == 0:
        return BANDS_ONLY
    return EMBEDDING_AND_BANDS if layout.bands else EMBEDDING_ONLY


class ClassifierFileError(ValueError):
    """The file is not an msGFM classifier, or does not fit the chosen model."""


@dataclass
class EncoderIdentity:
    """Which embedding model made the features a classifier was fitted on."""

    model_name: str
    model_version: str
    sha256: str
    sensor: str
    bands: List[str]
    stride: int
    channels: int

    @classmethod
    def of(cls, model_path: Union[str, Path], metadata: ModelMetadata) -> EncoderIdentity:
        spec = metadata.inputs[0]
        channels = next(len(o.bands) for o in metadata.outputs if o.kind == "embedding")
        return cls(
            model_name=metadata.model_name,
            model_version=metadata.model_version,
            sha256=sha256_file(model_path),
            sensor=spec.sensor,
            bands=list(spec.bands),
            stride=embedding_stride(metadata),
            channels=channels,
        )

    def describe(self) -> str:
        return (
            f"'{self.model_name}' {self.model_version} ({self.sensor}, {len(self.bands)} bands, "
            f"{self.channels} features every {self.stride} px)"
        )


@dataclass
class ClassInfo:
    value: int
    name: str
    color: str


@dataclass
class ClassifierFile:
    """Everything needed to apply a classifier to another scene."""

    # The encoder whose features it takes; None for a classifier on the bands only (version 3).
    encoder: Optional[EncoderIdentity]
    classes: List[ClassInfo]
    layout: FeatureLayout
    method: str
    model: Dict[str, Any]
    mean: List[float]
    scale: List[float]
    cross_validation: Dict[str, Any] = field(default_factory=dict)
    examples: Dict[str, Any] = field(default_factory=dict)
    # The model input the bands were read and normalised for (InputSpec fields); None in version 1.
    input: Optional[Dict[str, Any]] = None

    @property
    def features(self) -> str:
        return features_of(self.layout)

    @property
    def needs_encoder(self) -> bool:
        return self.layout.embedding > 0

    @classmethod
    def from_fitted(
        cls,
        fitted: FittedClassifier,
        encoder: Optional[EncoderIdentity],
        classes: List[ClassInfo],
        layout: FeatureLayout,
        examples: Dict[str, Any],
        input_spec: Optional[InputSpec] = None,
    ) -> ClassifierFile:
        chosen = fitted.chosen
        return cls(
            input=asdict(input_spec) if input_spec is not None else None,
            encoder=encoder,
            classes=classes,
            layout=layout,
            method=fitted.candidate.method,
            model=fitted.model.to_dict(),
            mean=fitted.standardize.mean.tolist(),
            scale=fitted.standardize.scale.tolist(),
            cross_validation={
                "chosen": fitted.candidate.describe(),
                "accuracy": chosen.accuracy,
                "balanced_accuracy": chosen.balanced_accuracy,
                "folds": chosen.folds,
                "confusion": chosen.confusion,
                "candidates": {
                    s.candidate.describe(): {
                        "accuracy": s.accuracy,
                        "balanced_accuracy": s.balanced_accuracy,
                    }
                    for s in fitted.scores
                },
            },
            examples=examples,
        )

    def predictor(self) -> Any:
        """A callable ``features (N, F) -> probabilities (N, K)``."""
        standardize = Standardizer(
            np.asarray(self.mean, dtype=np.float32), np.asarray(self.scale, dtype=np.float32)
        )
        if self.method == "logistic":
            model: Any = LogisticRegression.from_dict(self.model)
        elif self.method == "knn":
            model = NearestNeighbours.from_dict(self.model)
        elif self.method == "forest":
            model = RandomForest.from_dict(self.model)
        else:
            raise ClassifierFileError(f"unknown classifier method {self.method!r}")
        return lambda features: model.predict_proba(standardize(features))

    def input_metadata(self) -> ModelMetadata:
        """What reading the bands needs, from the file alone (a bands-only classifier): the
        input's sensor, bands and normalisation, as the metadata of a model with no output."""
        if self.input is None:
            raise ClassifierFileError(
                "the classifier file names no input bands (written by an older msGFM): apply it "
                "with the embedding model it was fitted with"
            )
        return reading_metadata(InputSpec(**self.input), name=FILE_READER_NAME)

    def check_input(self, metadata: ModelMetadata) -> None:
        """Refuse a model whose input reads the bands otherwise than the classifier was fitted on
        (another sensor, other bands or another normalisation)."""
        if self.input is None:
            return
        spec = asdict(metadata.inputs[0])
        keys = ("sensor", "bands", "mean", "std", "normalization")
        if any(spec[k] != self.input[k] for k in keys):
            raise ClassifierFileError(
                f"the classifier was fitted on the {self.input['sensor']} bands "
                f"{', '.join(self.input['bands'])} with the normalisation the file records, but "
                f"the model chosen ('{metadata.model_name}') reads "
                f"{spec['sensor']} bands {', '.join(spec['bands'])} with another normalisation: "
                "leave the model empty (a classifier on the bands only needs none)"
            )

    def check_encoder(self, model_path: Union[str, Path], metadata: ModelMetadata) -> List[str]:
        """Refuse an encoder whose features differ; returns warnings for a near match.

        The same name, sensor, bands, stride and feature count with another file (e.g. the model
        re-exported) is allowed with a warning; anything else is an error.
        """
        other = EncoderIdentity.of(model_path, metadata)
        mine = self.encoder
        if mine is None:
            raise ClassifierFileError(
                "the classifier was fitted on the pixel's bands only and needs no embedding "
                "model: leave the model empty"
            )
        if (other.sensor, other.bands, other.stride, other.channels) != (
            mine.sensor,
            mine.bands,
            mine.stride,
            mine.channels,
        ) or other.model_name != mine.model_name:
            raise ClassifierFileError(
                f"the classifier was fitted on the features of {mine.describe()}, but the model "
                f"chosen is {other.describe()}: choose that model (or fit a new classifier)"
            )
        if other.sha256 != mine.sha256:
            return [
                f"the model file differs from the one the classifier was fitted with (SHA-256 "
                f"{other.sha256[:12]} instead of {mine.sha256[:12]}, same name '{mine.model_name}'"
                f"{'' if other.model_version == mine.model_version else ', version ' + other.model_version}"
                "): its features may differ; check the map"
            ]
        return []

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["layout"] = {"embedding": self.layout.embedding, "bands": self.layout.bands}
        data["features"] = self.features
        return {"format": FORMAT, "version": VERSION, **data}

    def save(self, path: Union[str, Path]) -> Path:
        """Write the file atomically (a temporary file renamed into place)."""
        path = Path(path)
        write_text_atomically(path, json.dumps(self.to_dict()))
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> ClassifierFile:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ClassifierFileError(f"classifier file not found: {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ClassifierFileError(
                f"{path.name} is not an msGFM classifier file ({exc}); save one with "
                "msGFM > Classify with examples"
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ClassifierFileError(
                f"{path.name} is not an msGFM classifier file; save one with msGFM > Classify "
                "with examples"
            )
        if int(data.get("version", 0)) > VERSION:
            raise ClassifierFileError(
                f"{path.name} was written by a newer msGFM (classifier format "
                f"{data['version']}); update the msGFM plugin"
            )
        try:
            encoder = data["encoder"]
            loaded = cls(
                encoder=None if encoder is None else EncoderIdentity(**encoder),
                classes=[ClassInfo(**c) for c in data["classes"]],
                layout=FeatureLayout(**data["layout"]),
                method=data["method"],
                model=data["model"],
                mean=data["mean"],
                scale=data["scale"],
                cross_validation=data.get("cross_validation", {}),
                examples=data.get("examples", {}),
                input=data.get("input"),
            )
        except (KeyError, TypeError) as exc:
            raise ClassifierFileError(
                f"{path.name} is an incomplete classifier file ({exc})"
            ) from None
        if loaded.encoder is None and (loaded.needs_encoder or loaded.input is None):
            raise ClassifierFileError(
                f"{path.name} names no embedding model but holds a classifier of "
                f"{loaded.layout.embedding} embedding features"
                f"{'' if loaded.input is not None else ' and no input bands'}: the file was "
                "edited; save it again with msGFM > Classify with examples"
            )
        if data.get("features", loaded.features) != loaded.features:
            raise ClassifierFileError(
                f"{path.name} says its features are '{data['features']}' but holds a classifier "
                f"of {loaded.layout.embedding} embedding features and {loaded.layout.bands} bands: "
                "the file was edited; save it again with msGFM > Classify with examples"
            )
        return loaded


def class_infos(labels: List[Any]) -> List[ClassInfo]:
    """Class values, names and colours for the distinct labels of a class field.

    Integer labels from 0 to 254 keep their value (the raster then holds the user's codes); other
    labels (text, or integers out of that range) are numbered 1, 2, ... in sorted order.
    """
    distinct = sorted(set(labels), key=lambda v: (isinstance(v, str), v))
    integers = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in distinct)
    if integers and all(0 <= int(v) <= 254 for v in distinct):
        values = [int(v) for v in distinct]
    else:
        values = list(range(1, len(distinct) + 1))
    if len(values) > 254:
        raise ClassifierFileError(f"{len(values)} classes: at most 254 fit a class raster")
    colours = class_colours([str(label) for label in distinct])
    return [
        ClassInfo(value=v, name=str(label), color=colour)
        for v, label, colour in zip(values, distinct, colours)
    ]
