"""What each bundled model takes, in words, read from the model's own metadata.

The bundled models are retrained from time to time (other sensors, other bands): the help text and
the advice given when a layer cannot feed a model are written from the metadata of the model file
actually installed, never from a hard-coded list.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from backend.embedtools.models import EmbeddingModel, embedding_models
from backend.export.onnx_file import read_onnx_info
from backend.export.schema import from_metadata_props

from .resources import models_dir

_CACHE: Dict[Tuple[str, float], Optional[Any]] = {}
_EMBEDDING_CACHE: Dict[Tuple, List[EmbeddingModel]] = {}


def bundled_metadata(task: str) -> Optional[Any]:
    """The metadata of the bundled model for ``task``; None when there is none or it is unreadable."""
    path = models_dir() / f"{task}.onnx"
    try:
        key = (str(path), path.stat().st_mtime)
    except OSError:
        return None
    if key not in _CACHE:
        # Read from the file itself, not through an ONNX Runtime session: this runs when a
        # dialog opens, on QGIS's main thread, where a session would freeze the window ~1 s.
        try:
            _CACHE[key] = from_metadata_props(read_onnx_info(path).metadata_props)
        except Exception:  # a damaged file: the help says less
            _CACHE[key] = None
    return _CACHE[key]


def describe_inputs(metadata: Any) -> str:
    """``landsat imagery with 6 bands (B1, B2, ...) at 30 m`` for every input, joined by 'and'."""
    parts = []
    for spec in metadata.inputs:
        resolution = f" at about {spec.resolution_m:g} m" if spec.resolution_m else ""
        parts.append(
            f"{spec.sensor} imagery with {len(spec.bands)} band{'s' if len(spec.bands) != 1 else ''}"
            f" ({', '.join(spec.bands)}){resolution}"
        )
    return " and ".join(parts)


def help_note(task: str) -> str:
    """A help paragraph (QGIS help HTML) naming the bundled model's sensors and bands."""
    metadata = bundled_metadata(task)
    if metadata is None and not (models_dir() / f"{task}.onnx").is_file():
        return (
            "\n\n<b>Bundled model</b>: none. No model for this task passed the acceptance checks on "
            "real scenes it never saw (docs/acceptance.md), so none ships with the plugin. Get "
            "one: train it on your own labels with msGFM > Finetune, or choose a model file "
            "(.onnx) in 'msGFM model'."
        )
    if metadata is None:
        return (
            "\n\n<b>Bundled model</b>: see msGFM > Model information for the sensor and bands the "
            "bundled model expects (it could not be read here)."
        )
    trained = f" Trained on: {html.escape(metadata.trained_on)}." if metadata.trained_on else ""
    return (
        f"\n\n<b>Bundled model</b> ({html.escape(metadata.model_name)} "
        f"{html.escape(metadata.model_version)}): takes {html.escape(describe_inputs(metadata))}, "
        f"in {metadata.tile_size} px tiles.{trained} "
        "It works only on such imagery. For other imagery (RGB photos, other satellites), "
        "choose a model trained on it in 'msGFM model', train one with msGFM > Finetune, or "
        f"{few_shot_tools()}."
    )


def few_shot_tools() -> str:
    """The Embeddings tools a user can map with from a few examples, as the bundle allows."""
    sensors = ", ".join(m.sensor for m in bundled_embedding_models())
    if not sensors:
        return (
            "use msGFM > Classify with examples on the pixel's bands (no model needed; a few of "
            "your own examples)"
        )
    return (
        "use the msGFM embedding tools (Extract embeddings and the Embeddings group), which have "
        f"a bundled model for each of the sensors {sensors} and need only a few of your own "
        "examples"
    )


def bundled_embedding_models() -> List[EmbeddingModel]:
    """The bundled embedding models (one per sensor), read again only when the folder changes.

    Reading and checking the five files takes about 0.3 s; the help of every embedding tool (on
    QGIS's main thread, when its dialog opens) and every run ask for them.
    """
    folder = models_dir()
    try:
        files = tuple(sorted((p.name, p.stat().st_mtime) for p in folder.glob("*.onnx")))
    except OSError:
        files = ()
    key = (str(folder), files)
    if key not in _EMBEDDING_CACHE:
        _EMBEDDING_CACHE.clear()
        _EMBEDDING_CACHE[key] = embedding_models(folder)
    return _EMBEDDING_CACHE[key]


def embedding_models_note() -> str:
    """A help paragraph naming the bundled embedding models (one per sensor) and their bands."""
    found = bundled_embedding_models()
    if not found:
        return (
            "\n\n<b>Bundled models</b>: none. No embedding model passed the acceptance checks on "
            "real labelled scenes it never saw (docs/acceptance.md), so none ships with the "
            "plugin, and this algorithm refuses to run the encoder without one. Get one: export "
            "an embedding model (.onnx) from a pretraining checkpoint with <code>msgfm export "
            "--checkpoint CHECKPOINT --sensor SENSOR</code> (or msGFM > Export model to ONNX) and "
            "choose it as the model; or, to map your own classes, train a model on your labels "
            "with msGFM > Finetune, or use Classify with examples on the pixel's bands only, "
            "which needs no model."
        )
    listed = "".join(
        f"\n- {html.escape(m.path.name)} ({html.escape(m.metadata.model_name)}): "
        f"{html.escape(describe_inputs(m.metadata))}"
        for m in found
    )
    trained = found[0].metadata.trained_on
    return (
        "\n\n<b>Bundled models</b>: one embedding model per sensor, all from the one pretrained "
        "msGFM encoder; the model whose bands match the input's (count, then band names, then "
        "the layer's name) is chosen, or the one of 'Sensor of the input' (advanced):"
        f"{listed}\n"
        + (f"Trained on: {html.escape(trained)}. " if trained else "")
        + "For imagery of another sensor, give the bands of the closest one (e.g. a "
        "satellite's red, green and blue bands for the RGB model), or train a model with "
        "msGFM > Finetune."
    )


def alternatives(model_path: str | Path) -> str:
    """The advice for a layer that cannot feed the model at ``model_path``."""
    bundled = Path(model_path).resolve().parent == models_dir().resolve()
    which = "the bundled model" if bundled else "this model"
    return (
        f"{which} cannot use this layer. Instead: choose a model trained on this imagery in "
        "'msGFM model', train one on your own labels with msGFM > Finetune, or "
        f"{few_shot_tools()}"
    )
