"""How a pixel classifier on the raw bands reads a raster: from the sensor registry, no model file.

The Embeddings tools' "bands only" features are a pixel's own bands, normalised; the encoder does
not run. Which bands, in which order, in which units and how they are normalised is what the
sensor registry (:mod:`backend.sensors`) says of the raster's sensor: the same entry the
exported models' inputs are made from, so a raster is read the same way with or without a model.
The classifier re-standardises its features, so the registry's default statistics serve here as
well as a model's training statistics (they also mark values far out of the sensor's range).
"""

from __future__ import annotations

from ..export.schema import InputSpec, ModelMetadata
from ..sensors import get_sensor

# The name a bands-only reading takes where the engine's messages name a model.
READER_NAME = "the pixel's bands"


def sensor_input(sensor: str) -> InputSpec:
    """The input spec of ``sensor``'s registry entry: its bands in order, units and statistics.

    Raises:
        KeyError: the registry does not know ``sensor``.
    """
    entry = get_sensor(sensor)
    return InputSpec(
        name=entry.name,
        sensor=entry.name,
        bands=list(entry.bands),
        mean=[float(v) for v in entry.mean],
        std=[float(v) for v in entry.std],
        resolution_m=float(entry.resolution_m),
        normalization=entry.normalization,
    )


def reading_metadata(spec: InputSpec, name: str = READER_NAME) -> ModelMetadata:
    """What reading the bands of ``spec`` needs, as the metadata of a model with no output (the
    form :class:`backend.embedtools.features.PixelFeatures` and the input checks take)."""
    return ModelMetadata(
        task="embedding",
        inputs=[spec],
        outputs=[],
        tile_size=1,
        default_overlap=0.0,
        model_name=name,
        model_version="",
    )


def describe(spec: InputSpec) -> str:
    """``s2 bands B01, B02, ... (reflectance x 10000)`` for the log."""
    try:
        units = f" ({get_sensor(spec.sensor).units})"
    except KeyError:
        units = ""
    return f"{spec.sensor} bands {', '.join(spec.bands)}{units}"
