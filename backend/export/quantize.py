"""Int8 models: ONNX Runtime's dynamic quantisation, with parity against the float model recorded.

``msgfm export --quantize int8`` stores the weights of the matrix products as int8 and quantises
their inputs on the fly (``onnxruntime.quantization.quantize_dynamic``): the file is about half the
size; whether it runs faster depends on the CPU's int8 instructions (measured in
``docs/benchmarks.md``). What it
costs in accuracy is measured, never assumed, and written into the model's ``quantization``
metadata:

- on a task's held-back tiles (``--parity-data``: the data spec the model was finetuned on, split
  as in training), the task's scores of the float model and of the int8 model side by side;
- on tiles of real rasters (``--parity-raster``, any model including embeddings), how far the int8
  outputs are from the float outputs: the share of pixels with the same class, the relative RMS
  error and, for embeddings, the cosine similarity.

Quantisation needs the ``onnx`` package (a development dependency); running an int8 model needs only
onnxruntime.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from ..files import sha256_file
from .schema import ModelMetadata, embed_metadata, read_model_metadata

PARITY_TILES = 32  # at most this many raster tiles are compared
# The matrix products (attention, MLPs, MoE experts, linear heads) hold nearly all weights.
# Convolutions stay float: ONNX Runtime's ConvInteger ran the bundled models' convolutional
# decoders 1.5-4x slower than float on CPU (benchmarks/quantize), for little size gained.
QUANTIZED_OPS = ("MatMul", "Gemm")


@dataclass
class QuantizeReport:
    """What :func:`quantize_model` wrote and measured."""

    path: Path
    metadata: ModelMetadata
    source_bytes: int
    bytes: int
    parity: Dict[str, Any] = field(default_factory=dict)


def quantize_model(
    source: Path,
    out: Path,
    *,
    parity_data: Optional[str] = None,
    data_root: Optional[str] = None,
    val_fraction: Optional[float] = None,
    split_seed: Optional[int] = None,
    test_fraction: Optional[float] = None,
    split_fold: Optional[int] = None,
    parity_rasters: Optional[Sequence[str]] = None,
    max_tiles: int = PARITY_TILES,
    score_model: Optional[Callable[..., Dict[str, Any]]] = None,
) -> QuantizeReport:
    """Write an int8 copy of the float ONNX model ``source`` to ``out``, with parity figures.

    Args:
        source: an msGFM ``.onnx`` model in float32.
        out: the int8 model to write (replaced atomically).
        parity_data: a data spec (name, file or inline JSON) whose held-back split both models are
            scored on (task models).
        data_root, val_fraction, split_seed, test_fraction, split_fold: the split, as for
            ``msgfm evaluate`` (defaults 0.2 and seed 0); with a test fraction both models are
            scored on the test tiles, else on the validation tiles.
        parity_rasters: ``SENSOR=PATH`` rasters, one per model input, co-registered: the two
            models' outputs are compared on up to ``max_tiles`` of their fully valid tiles.
        score_model: what scores a model on a data spec's held-back split (the caller passes
            :func:`backend.train.evaluate.evaluate_model`: evaluation sits above export, so it is
            handed in rather than imported); needed with ``parity_data``.

    Raises:
        ValueError: no parity data was given, or the model is already quantised.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, out = Path(source), Path(out)
    metadata = read_model_metadata(source)
    if metadata.quantization:
        raise ValueError(f"{source.name} is already quantised ({metadata.quantization['weights']})")
    if parity_data and score_model is None:
        raise ValueError("parity_data needs score_model (backend.train.evaluate.evaluate_model)")
    if not parity_data and not parity_rasters:
        raise ValueError(
            "an int8 export must be measured against the float model: give held-back data "
            "(--parity-data SPEC) or real rasters (--parity-raster SENSOR=PATH)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, partial_name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".onnx", dir=out.parent)
    os.close(handle)
    partial = Path(partial_name)
    try:
        with _quiet_root_logger():  # the quantiser logs every tensor it cannot type, at length
            quantize_dynamic(
                str(source),
                str(partial),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(QUANTIZED_OPS),
            )
        parity: Dict[str, Any] = {}
        if parity_data:
            parity["held_back"] = held_back_parity(
                score_model,
                source,
                partial,
                parity_data,
                data_root,
                val_fraction,
                split_seed,
                test_fraction,
                split_fold,
            )
        if parity_rasters:
            parity["outputs"] = output_parity(source, partial, metadata, parity_rasters, max_tiles)
        quantized = read_model_metadata(source)
        quantized.model_version = f"{metadata.model_version}-int8"
        quantized.quantization = quantization_record(source, parity)
        _rewrite_metadata(partial, quantized)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return QuantizeReport(
        path=out,
        metadata=read_model_metadata(out),
        source_bytes=source.stat().st_size,
        bytes=out.stat().st_size,
        parity=parity,
    )


def quantization_record(source: Path, parity: Mapping[str, Any]) -> Dict[str, Any]:
    """The ``quantization`` metadata value: how the model was quantised and what it cost."""
    import onnxruntime

    return {
        "weights": "int8",
        "activations": "uint8, quantised per call (dynamic)",
        "method": "onnxruntime.quantization.quantize_dynamic",
        "operators": list(QUANTIZED_OPS),
        "onnxruntime": onnxruntime.__version__,
        "source_sha256": sha256_file(source),
        "parity": dict(parity),
    }


def held_back_parity(
    score_model: Callable[..., Dict[str, Any]],
    source: Path,
    quantized: Path,
    data: str,
    data_root: Optional[str],
    val_fraction: Optional[float],
    split_seed: Optional[int],
    test_fraction: Optional[float] = None,
    split_fold: Optional[int] = None,
) -> Dict[str, Any]:
    """Task scores of the float and the int8 model on the same held-back tiles."""
    reports = {
        name: score_model(
            str(path),
            data=data,
            data_root=data_root,
            val_fraction=val_fraction,
            split_seed=split_seed,
            test_fraction=test_fraction,
            split_fold=split_fold,
            split_part="test" if test_fraction else "val",
        )
        for name, path in (("float32", source), ("int8", quantized))
    }
    first = reports["float32"]
    return {
        "data": data if not str(data).lstrip().startswith("{") else first["data"],
        "split": first["split"],
        "n_samples": first["n_samples"],
        "float32": _json_numbers(first["metrics"]),
        "int8": _json_numbers(reports["int8"]["metrics"]),
    }


def _json_numbers(metrics: Mapping[str, Any]) -> Dict[str, Any]:
    """Scores as JSON allows them: an undefined score (NaN, a class absent) becomes null."""
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in metrics.items()
    }


def output_parity(
    source: Path,
    quantized: Path,
    metadata: ModelMetadata,
    rasters: Sequence[str],
    max_tiles: int = PARITY_TILES,
) -> Dict[str, Any]:
    """How far the int8 model's outputs are from the float model's on tiles of real rasters."""
    from ..inference.session import create_session

    feeds = raster_tiles(metadata, rasters, max_tiles)
    names = [spec.name for spec in metadata.outputs]
    reference = _run_in_batches(create_session(source, "cpu")[0], names, feeds)
    candidate = _run_in_batches(create_session(quantized, "cpu")[0], names, feeds)
    figures: Dict[str, Any] = {}
    for spec, ref, got in zip(metadata.outputs, reference, candidate):
        ref, got = ref.astype(np.float64), got.astype(np.float64)
        error = got - ref
        spread = float(ref.std())
        item: Dict[str, Any] = {
            "max_abs_diff": float(np.abs(error).max()),
            "relative_rmse": float(np.sqrt(np.mean(error**2)) / spread) if spread else 0.0,
        }
        if spec.kind in ("class", "probability") and ref.ndim >= 2 and ref.shape[1] > 1:
            item["class_agreement"] = float(np.mean(ref.argmax(axis=1) == got.argmax(axis=1)))
        if spec.kind == "embedding":
            dot = np.sum(ref * got, axis=1)
            norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
            item["mean_cosine"] = float(np.mean(dot / np.maximum(norms, 1e-12)))
        figures[spec.name] = item
    first = next(iter(feeds.values()))
    return {
        "rasters": [Path(item.partition("=")[2]).name for item in rasters],
        "n_tiles": int(first.shape[0]),
        "per_output": figures,
    }


def raster_tiles(
    metadata: ModelMetadata, rasters: Sequence[str], max_tiles: int = PARITY_TILES
) -> Dict[str, np.ndarray]:
    """Normalised model inputs ``{input name: (N, bands, t, t)}`` from ``SENSOR=PATH`` rasters.

    Non-overlapping tiles of the model's tile size whose pixels are all valid in every raster,
    spread evenly over the rasters (which must be co-registered: the same size), at most
    ``max_tiles`` of them. Normalisation is the model's own (its metadata).
    """
    import rasterio

    from ..inference.preprocessing import normalize_mean_std, normalize_per_tile

    t = metadata.tile_size
    images: Dict[str, np.ndarray] = {}
    valid: Optional[np.ndarray] = None
    for item in rasters:
        sensor, sep, path = item.partition("=")
        if not sep or not path:
            raise ValueError(f"--parity-raster {item!r}: write it as SENSOR=PATH")
        try:
            spec = metadata.input(sensor.strip())
        except KeyError as exc:
            raise ValueError(f"--parity-raster {item!r}: {exc.args[0]}") from None
        with rasterio.open(path) as dataset:
            if dataset.count != len(spec.bands):
                raise ValueError(
                    f"--parity-raster {item}: {dataset.count} bands, but the model's {spec.sensor} "
                    f"input takes {len(spec.bands)} ({', '.join(spec.bands)}) in that order"
                )
            bands = [dataset.read(b, masked=True) for b in range(1, dataset.count + 1)]
        image = np.stack([band.astype(np.float32).filled(np.nan) for band in bands])
        item_valid = np.isfinite(image).all(axis=0)  # masked pixels were filled with NaN
        if valid is not None and valid.shape != item_valid.shape:
            raise ValueError("--parity-raster rasters must be co-registered (the same size)")
        valid = item_valid if valid is None else valid & item_valid
        images[spec.name] = image
    missing = [s.sensor for s in metadata.inputs if s.name not in images]
    if missing or valid is None:
        raise ValueError(f"--parity-raster: give a raster for every model input ({missing})")
    height, width = valid.shape
    corners = [
        (r, c)
        for r in range(0, height - t + 1, t)
        for c in range(0, width - t + 1, t)
        if valid[r : r + t, c : c + t].all()
    ]
    if not corners:
        raise ValueError(f"--parity-raster: no fully valid {t} px tile in the rasters")
    picks = np.linspace(0, len(corners) - 1, min(max_tiles, len(corners))).round().astype(int)
    chosen = [corners[i] for i in sorted(set(picks.tolist()))]
    feeds = {}
    for spec in metadata.inputs:
        tiles = []
        for r, c in chosen:
            window = images[spec.name][:, r : r + t, c : c + t]
            ones = np.ones((t, t), dtype=bool)
            if spec.normalization == "per_tile":
                tiles.append(normalize_per_tile(window, ones))
            else:
                tiles.append(normalize_mean_std(window, ones, spec))
        feeds[spec.name] = np.stack(tiles).astype(spec.dtype)
    return feeds


def _run_in_batches(
    session: Any, names: List[str], feeds: Mapping[str, np.ndarray], batch: int = 4
) -> List[np.ndarray]:
    total = next(iter(feeds.values())).shape[0]
    parts: List[List[np.ndarray]] = [[] for _ in names]
    for start in range(0, total, batch):
        outputs = session.run(names, {k: v[start : start + batch] for k, v in feeds.items()})
        for part, output in zip(parts, outputs):
            part.append(output)
    return [np.concatenate(part) for part in parts]


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _rewrite_metadata(path: Path, metadata: ModelMetadata) -> None:
    import onnx

    proto = onnx.load(str(path))
    embed_metadata(proto, metadata)
    onnx.save(proto, str(path))
