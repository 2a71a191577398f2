"""Checks of a model and of the chosen layers against the model's metadata, before any work.

Every failure is a :class:`QgsProcessingException` a GIS user can act on: which layer or parameter,
what the model expected, and what to choose instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from qgis.core import (
    QgsCoordinateTransform,
    QgsCsException,
    QgsProcessingContext,
    QgsProcessingException,
    QgsRasterLayer,
)

from backend.export import schema
from backend.export.onnx_file import read_onnx_info

from .i18n import tr
from .layers import band_names
from .resources import models_dir

# The schema's task names and the algorithm that runs each, for "use msGFM > ..." hints.
TASK_NAMES: Dict[str, str] = {
    "classification": "scene classification",
    "segmentation": "segmentation",
    "cloud-removal": "cloud removal",
    "pansharpening": "pan-sharpening",
    "embedding": "embedding",
}
TASK_ALGORITHMS: Dict[str, str] = {
    "classification": "Classify scenes",
    "segmentation": "Segment land cover",
    "cloud-removal": "Remove clouds",
    "pansharpening": "Pan-sharpen",
    "embedding": "Extract embeddings",
}


def bundled_model(task: str) -> Path:
    """Where the plugin's default model for ``task`` lives (it may not exist)."""
    return models_dir() / f"{task}.onnx"


def resolve_model_path(chosen: str, task: str) -> str:
    """The chosen model file, or the bundled model for ``task`` when none was chosen."""
    if chosen:
        return chosen
    default = bundled_model(task)
    if not default.is_file():
        raise QgsProcessingException(
            tr(
                "There is no bundled model for {} yet; choose an .onnx model in 'msGFM model'"
            ).format(task)
        )
    return str(default)


def read_metadata(model_path: str) -> Any:
    """The model's validated metadata; a corrupt or foreign file is a user-readable error.

    Read from the file itself first: an ONNX Runtime session takes most of a second to open and
    holds Python's lock meanwhile (the run opens its own session, which checks the graph too).
    A file that does not read that way is opened by ONNX Runtime, whose error is the clearest.
    """
    try:
        props = read_onnx_info(model_path).metadata_props
        if props:
            return schema.from_metadata_props(props)
    except (OSError, ValueError):  # not protobuf, or metadata ONNX Runtime will explain
        pass
    try:
        return schema.read_model_metadata(model_path)
    except (schema.ModelFileError, schema.ModelMetadataError) as exc:
        raise QgsProcessingException(
            tr("Cannot use the model '{}': {}").format(model_path, exc)
        ) from None


def check_task(metadata: Any, task: str) -> None:
    """Refuse a model trained for another task, naming the algorithm that runs it."""
    if metadata.task == task:
        return
    other = metadata.task
    raise QgsProcessingException(
        tr("The model '{}' is a {} model; use msGFM > {}, or choose a {} model").format(
            metadata.model_name,
            TASK_NAMES.get(other, other),
            TASK_ALGORITHMS.get(other, other),
            TASK_NAMES[task],
        )
    )


def describe_bands(names: Sequence[str]) -> str:
    return ", ".join(names)


def choose_bands(
    layer: QgsRasterLayer, chosen: Sequence[int], spec: Any, bands_label: str, advice: str = ""
) -> List[int]:
    """The 1-based band indexes of ``layer`` that feed the model input ``spec``, in its order.

    Chosen bands are used as given when their count fits. With none chosen: all bands in order when
    the layer has exactly as many bands as the model needs, else the bands whose descriptions name
    the model's bands (a 13-band Sentinel-2 L1C stack gives its 12 model bands, B10 left out).
    """
    needed = len(spec.bands)
    wanted = f"the model's {spec.sensor} input needs {needed} ({describe_bands(spec.bands)})"
    if chosen:
        if len(chosen) != needed:
            raise QgsProcessingException(
                tr(
                    "{} band(s) of layer '{}' are chosen in '{}' but {}: choose {} bands in "
                    "that order"
                ).format(len(chosen), layer.name(), bands_label, wanted, needed)
            )
        return list(chosen)
    count = layer.bandCount()
    if count == needed:
        return list(range(1, count + 1))
    matched = match_band_names(band_names(layer), spec.bands)
    if matched is not None:
        return matched
    plural = "band" if count == 1 else "bands"
    if count < needed:  # no choice of bands can help: say what will work instead
        raise QgsProcessingException(
            tr("Layer '{}' has {} {} but {}, so no choice of bands can feed it{}").format(
                layer.name(), count, plural, wanted, ": " + advice if advice else ""
            )
        )
    raise QgsProcessingException(
        tr("Layer '{}' has {} {} but {}: choose {} bands in '{}'").format(
            layer.name(), count, plural, wanted, needed, bands_label
        )
    )


def match_band_names(available: Sequence[str], wanted: Sequence[str]) -> Optional[List[int]]:
    """1-based indexes of ``wanted`` band names among ``available`` descriptions, or None.

    Matching ignores case, takes the last token of names such as ``T33UUU_..._B04`` and reads
    ``B4`` as ``B04``; every wanted band must be found exactly once.
    """
    keys: Dict[str, List[int]] = {}
    for index, name in enumerate(available, start=1):
        for key in set(_band_keys(name)):
            keys.setdefault(key, []).append(index)
    found = []
    for name in wanted:
        hits = keys.get(_normal(name), [])
        if len(hits) != 1:
            return None
        found.append(hits[0])
    return found if len(set(found)) == len(found) else None


def _band_keys(name: str) -> List[str]:
    name = name.strip()
    if not name:
        return []
    stem = name.rsplit(".", 1)[0] if re.search(r"\.\w{2,4}$", name) else name
    tokens = [t for t in re.split(r"[_\-\s]+", stem) if t]
    keys = [_normal(stem)]
    if tokens:
        keys.append(_normal(tokens[-1]))
    return keys


def _normal(name: str) -> str:
    key = name.strip().upper()
    sentinel = re.match(r"^B0*(\d+)(A?)$", key)
    return f"B{int(sentinel.group(1)):02d}{sentinel.group(2)}" if sentinel else key


def check_overlap(
    reference: QgsRasterLayer,
    reference_label: str,
    other: QgsRasterLayer,
    other_label: str,
    context: QgsProcessingContext,
) -> None:
    """Refuse a layer that does not overlap the reference layer (whose grid the output takes)."""
    message = (
        f"Layer '{other.name()}' ({other_label}) does not overlap layer '{reference.name()}' "
        f"({reference_label}): choose layers that cover the same area"
    )
    extent = other.extent()
    if other.crs().isValid() and reference.crs().isValid() and other.crs() != reference.crs():
        transform = QgsCoordinateTransform(other.crs(), reference.crs(), context.transformContext())
        try:
            extent = transform.transformBoundingBox(extent)
        except QgsCsException:
            raise QgsProcessingException(message) from None
    if not extent.intersects(reference.extent()):
        raise QgsProcessingException(message)
