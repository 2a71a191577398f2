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
from .layers import band_names, product_source, source_file
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
        # No model ships for a task whose model failed its acceptance on real scenes
        # (docs/acceptance.md): say so before any work, and how to get one.
        raise QgsProcessingException(
            tr(
                "There is no bundled model for {} input (none passed the acceptance checks on "
                "real scenes it never saw). Get one: train it on your own labels with msGFM > "
                "Finetune, or choose a model file (.onnx) in 'msGFM model'."
            ).format(TASK_NAMES.get(task, task))
        )
    return str(default)


def no_embedding_model(model_label: str) -> str:
    """Why an algorithm that runs the encoder cannot run without a chosen model, and what to do."""
    return tr(
        "There is no bundled embedding model: none passed the acceptance checks on real labelled "
        "scenes it never saw (docs/acceptance.md), so none ships with the plugin, and this "
        "algorithm runs the encoder. Get one: export an embedding model (.onnx) from a "
        "pretraining checkpoint with `msgfm export --checkpoint CHECKPOINT --sensor SENSOR` (or "
        "msGFM > Export model to ONNX) and choose it in '{}'; or, to map your own classes, train "
        "a model on your labels with msGFM > Finetune, or use Classify with examples on the "
        "pixel's bands only, which needs no model."
    ).format(tr(model_label))


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


def layer_facts(layer: QgsRasterLayer, label: str = "") -> Any:
    """What ``layer`` says about itself, for :mod:`backend.sensor_resolver`.

    A layer backed by a file (or a Sentinel-2 product loaded through GDAL's SENTINEL2 driver) is
    read as the engine will read it: through :func:`backend.products.harmonise`, with the band
    names and wavelengths of the product and a sample of its values. Other layers (in memory, web
    services) give their band names only. A file's facts are read once while it is unchanged
    (same size and modification time): one run asks for them to choose the model and the bands.
    """
    import dataclasses
    import tempfile

    from backend.sensor_resolver import RasterBand, RasterFacts

    name = f"Layer '{layer.name()}'" + (f" ({label})" if label else "")
    path = product_source(layer) or source_file(layer)
    if path is not None:
        from backend.inference.raster_facts import read_facts
        from backend.products import ProductError, harmonise

        key = _file_key(path, layer.name())
        if key is not None and key in _FACTS:
            return dataclasses.replace(_FACTS[key], label=name)
        with tempfile.TemporaryDirectory(prefix="msgfm-facts-") as workdir:
            try:
                source = harmonise(path, Path(workdir))
            except ProductError as exc:
                raise QgsProcessingException(f"{name}: {exc}") from None
            facts = read_facts(source, name, name_hints=[layer.name(), Path(path).name])
        if key is not None:
            while len(_FACTS) >= _FACTS_KEPT:
                _FACTS.pop(next(iter(_FACTS)))
            _FACTS[key] = facts
        return facts
    bands = tuple(RasterBand(n) for n in band_names(layer))
    return RasterFacts(label=name, bands=bands, name_hints=(layer.name(),))


# Facts of recently read files, by :func:`_file_key` (oldest first).
_FACTS: Dict[tuple, Any] = {}
_FACTS_KEPT = 16


def _file_key(path: str, layer_name: str) -> Optional[tuple]:
    """What identifies a file's content: its path, size and modification time (None: unknown).

    A GDAL SENTINEL2 subdataset (``SENTINEL2_L2A:/x/MTD_MSIL2A.xml:10m:EPSG_32633``) is keyed on
    its metadata file.
    """
    import os

    from backend.products.sentinel2 import subdataset_path

    file = subdataset_path(path) or path
    if file.startswith("/vsi"):
        return None  # inside an archive: no modification time of its own
    try:
        stat = os.stat(file)
    except (OSError, ValueError):
        return None
    return (path, layer_name, stat.st_size, stat.st_mtime_ns)


def choose_bands(
    layer: QgsRasterLayer,
    chosen: Sequence[int],
    spec: Any,
    bands_label: str,
    advice: str = "",
    run_anyway: bool = False,
) -> List[int]:
    """The 1-based band indexes of ``layer`` that feed the model input ``spec``, in its order.

    The layer's sensor and bands are resolved by :func:`backend.sensor_resolver.bands_for`: a layer
    of another sensor is refused; bands named in the layer are used in the model's order (chosen
    bands the names contradict are refused with the mapping the names give); unnamed bands are
    used as chosen, or all of them when the count fits, unless their values say the order is
    shuffled (refused unless ``run_anyway``).
    """
    from backend.sensor_resolver import BandMatchError, BandOrderError, bands_for

    facts = layer_facts(layer)
    product = product_source(layer)
    if chosen and (product or facts.count != layer.bandCount()):
        # The layer shows part of what the run reads: one resolution's subdataset of a Sentinel-2
        # product (the run reads the whole product), or one band file of a set (T33UUU_..._B04.jp2
        # beside its siblings, read as the set). Band numbers of the layer mean other bands there.
        if product:
            why = tr(
                "it is one subdataset of a Sentinel-2 product ({}), and the run reads the whole "
                "product (every band, resampled onto its 10 m grid)"
            ).format(product.split(":")[-2])
        else:
            why = tr("it is one band file of a set, and the run reads the whole set")
        raise QgsProcessingException(
            tr(
                "Layer '{}' has {} band(s) but is read as {} bands ({}): {}. Band numbers of "
                "this layer would pick other bands. Leave '{}' empty: the bands are taken by name"
            ).format(
                layer.name(),
                layer.bandCount(),
                facts.count,
                ", ".join(band.name for band in facts.bands),
                why,
                bands_label,
            )
        )
    try:
        return bands_for(facts, spec.sensor, spec.bands, chosen, f"'{bands_label}'").indexes
    except BandOrderError as exc:
        if run_anyway:  # the engine warns that the run is out of the model's domain
            return list(chosen) if chosen else list(range(1, layer.bandCount() + 1))
        raise QgsProcessingException(
            tr("{}; or set the advanced 'Run anyway' parameter if you are sure").format(exc)
        ) from None
    except BandMatchError as exc:
        # No choice of bands can help: say what will work instead.
        tail = f": {advice}" if advice and "no choice of bands" in str(exc) else ""
        raise QgsProcessingException(f"{exc}{tail}") from None


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
