"""Which embedding model fits an input raster: found among the ``.onnx`` files of a folder.

There is one embedding model per sensor (S2, SAR, RGB, elevation...), each exported from the one
pretrained encoder. Nothing here knows their file names, band counts or strides: every ``.onnx``
file in the folder whose metadata says ``task == "embedding"`` is a candidate, and its single input
(sensor, bands) decides which rasters it fits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Set, Union

from ..export.schema import ModelFileError, ModelMetadata, ModelMetadataError, read_model_metadata
from ..sensors import SENSORS


class NoEmbeddingModelError(ValueError):
    """No embedding model in the folder fits the input."""


@dataclass
class EmbeddingModel:
    path: Path
    metadata: ModelMetadata

    @property
    def sensor(self) -> str:
        return self.metadata.inputs[0].sensor

    @property
    def bands(self) -> List[str]:
        return list(self.metadata.inputs[0].bands)

    def describe(self) -> str:
        return f"{self.path.name} ({self.sensor}: {len(self.bands)} bands {', '.join(self.bands)})"


def embedding_models(folder: Union[str, Path]) -> List[EmbeddingModel]:
    """The single-input embedding models among the ``.onnx`` files of ``folder``, by file name.

    Files that are not msGFM models (or not embedding models) are skipped.
    """
    found = []
    for path in sorted(Path(folder).glob("*.onnx")):
        try:
            metadata = read_model_metadata(path)
        except (ModelFileError, ModelMetadataError):
            continue
        single_input = metadata.task == "embedding" and len(metadata.inputs) == 1
        if single_input and any(o.kind == "embedding" for o in metadata.outputs):
            found.append(EmbeddingModel(path, metadata))
    return found


def _normal(name: str) -> str:
    key = name.strip().upper()
    token = key.replace("-", "_").replace(" ", "_").split("_")[-1]
    if token.startswith("B") and token[1:].rstrip("A").isdigit():
        number, suffix = token[1:].rstrip("A"), token[len(token.rstrip("A")) :]
        token = f"B{int(number):02d}{suffix}"
    return token


def _names_match(model: EmbeddingModel, band_names: Sequence[str]) -> bool:
    available = {_normal(n) for n in band_names if n}
    return all(_normal(b) in available for b in model.bands)


def _tokens(text: str) -> Set[str]:
    return {t for t in re.split(r"[^A-Z0-9]+", text.upper()) if len(t) > 1}


def _name_hints(model: EmbeddingModel) -> Set[str]:
    """Words that name the model's sensor in a layer name: the sensor, its bands and aliases."""
    words = [model.sensor, *model.bands]
    if model.sensor in SENSORS:
        words += list(SENSORS[model.sensor].aliases)
    return set().union(*(_tokens(w) for w in words))


def choose_embedding_model(
    models: Sequence[EmbeddingModel],
    band_count: int,
    band_names: Sequence[str] = (),
    sensor: Optional[str] = None,
    layer_name: str = "",
) -> EmbeddingModel:
    """The model for a raster with ``band_count`` bands named ``band_names`` (or for ``sensor``).

    With ``sensor`` given, the model of that sensor. Otherwise the model whose input has as many
    bands as the raster (or whose band names the raster's band descriptions all contain, e.g. the
    12 model bands among a 13-band Sentinel-2 L1C stack); when several fit, the one whose band
    names match the raster's wins, then the one whose sensor the layer's name names (a one-band
    ``..._VV_...`` layer is SAR, ``olinda_dem`` is elevation: the sensor, its band names and
    their aliases as words of the name), then the first by file name.

    Raises:
        NoEmbeddingModelError: none fits; the message lists the models there are.
    """
    available = "; ".join(m.describe() for m in models) or "none"
    if sensor:
        for model in models:
            if model.sensor == sensor:
                return model
        raise NoEmbeddingModelError(
            f"there is no embedding model for sensor '{sensor}' (embedding models: {available})"
        )
    same_count = [m for m in models if len(m.bands) == band_count]
    named = [m for m in models if band_names and _names_match(m, band_names)]
    words = _tokens(layer_name)
    for group in ([m for m in same_count if m in named], same_count, named):
        if group:
            return next((m for m in group if _name_hints(m) & words), group[0])
    raise NoEmbeddingModelError(
        f"no embedding model takes a raster of {band_count} band(s) (embedding models: "
        f"{available}): choose the bands, the sensor or the model"
    )
