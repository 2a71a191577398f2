"""Which embedding model fits an input raster: found among the ``.onnx`` files of a folder.

There is one embedding model per sensor (S2, SAR, RGB, elevation...), each exported from the one
pretrained encoder. Nothing here knows their file names, band counts or strides: every ``.onnx``
file in the folder whose metadata says ``task == "embedding"`` is a candidate, and its single input
(sensor, bands) decides which rasters it fits: :func:`backend.sensor_resolver.choose_sensor` picks
the one whose sensor the raster is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Union

from ..export.schema import ModelFileError, ModelMetadata, ModelMetadataError, read_model_metadata


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
