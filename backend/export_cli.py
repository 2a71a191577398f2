"""`msgfm info` (print an ONNX model's msGFM metadata) and `msgfm export` (checkpoint -> ONNX)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from .conventions import json_safe
from .export.model_summary import summary_lines
from .export.schema import ModelFileError, ModelMetadataError, read_model_metadata

QUANTIZATIONS = ("int8",)

PARITY_TILES = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="a model's task, sensors and bands, classes, scores, training data and licence",
        description=(
            "Print what an ONNX model exported by `msgfm export` is: its task, sensors and bands "
            "with their units, classes, scores (labelled test or validation), training data and "
            "licence; --json prints its full msGFM metadata."
        ),
    )
    parser.add_argument("model", help="path to an .onnx model exported by `msgfm export`")
    parser.add_argument("--json", action="store_true", help="print the full metadata as JSON")
    parser.set_defaults(func=_info)

    export = subparsers.add_parser(
        "export",
        help="export a checkpoint to one self-describing ONNX file, checked against torch",
        description=(
            "Export a finetuning checkpoint (task model) or a pretraining checkpoint (encoder "
            "embeddings) to a single .onnx file with msGFM metadata. ONNX Runtime is run against "
            "torch on tiles at another batch size; the export fails when they differ by more "
            "than the tolerance, and the max abs difference is printed."
        ),
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="checkpoint folder or run folder")
    source.add_argument(
        "--onnx", help="with --quantize: an exported float .onnx model to quantise instead"
    )
    export.add_argument("--out", required=True, help="the .onnx file to write")
    export.add_argument(
        "--sensor",
        action="append",
        default=None,
        help="embedding export: encoder input sensor (repeat to fuse several, e.g. s2 and sar)",
    )
    export.add_argument(
        "--tile-size", type=int, default=None, help="embedding export: tile size in pixels"
    )
    export.add_argument("--tolerance", type=float, default=1e-4, help="max abs difference allowed")
    export.add_argument("--batch-size", type=int, default=2, help="batch size traced at export")
    export.add_argument("--model-name", default=None, help="metadata model_name")
    export.add_argument("--model-version", default=None, help="metadata model_version")
    export.add_argument(
        "--parity-raster",
        action="append",
        default=None,
        metavar="SENSOR=PATH",
        help=(
            "real tiles for the parity check: a raster per model input with the sensor's bands "
            "in order (co-registered, same size); default: random normal tiles"
        ),
    )
    export.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        default=None,
        help=(
            "write an int8 model (ONNX Runtime dynamic quantisation) measured against the float "
            "model on --parity-data held-back tiles and/or --parity-raster tiles; the figures go "
            "into its metadata"
        ),
    )
    export.add_argument(
        "--parity-data",
        default=None,
        metavar="SPEC",
        help="with --quantize: data spec whose held-back split both models are scored on",
    )
    export.add_argument("--data-root", default=None, help="root of --parity-data's paths")
    export.add_argument(
        "--test-fraction",
        type=float,
        default=None,
        help="--parity-data split as the model was trained (score its test tiles)",
    )
    export.add_argument("--split-fold", type=int, default=None, help="leave-one-patch-out fold")
    export.add_argument("--json", action="store_true", help="print the export report as JSON")
    export.set_defaults(func=_export)


def _info(args: argparse.Namespace) -> int:
    try:
        metadata = read_model_metadata(args.model)
    except (ModelFileError, ModelMetadataError) as exc:
        raise SystemExit(f"msgfm info: {exc}") from None
    if args.json:
        print(json.dumps(json_safe(metadata.to_dict()), indent=2, allow_nan=False))
    else:
        print("\n".join(summary_lines(metadata)))
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.quantize:
        return _export_quantized(args)
    if args.onnx:
        raise SystemExit("msgfm export: --onnx is for --quantize; export a --checkpoint instead")
    from .export.onnx_export import ExportParityError, export_checkpoint

    try:
        samples = None
        if args.parity_raster:
            samples = read_parity_tiles(args.checkpoint, args.parity_raster, args.tile_size)
        report = export_checkpoint(
            args.checkpoint,
            args.out,
            batch_size=args.batch_size,
            tolerance=args.tolerance,
            sample_inputs=samples,
            sensors=args.sensor,
            tile_size=args.tile_size,
            model_name=args.model_name,
            model_version=args.model_version,
        )
    except ExportParityError as exc:
        print(f"msgfm export: {exc}")
        return 1
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise SystemExit(f"msgfm export: {exc}") from None
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(report.path),
                    "task": report.metadata.task,
                    "max_abs_diff": report.max_abs_diff,
                    "per_output": report.per_output,
                    "parity_batch_size": report.parity_batch_size,
                    "parity_inputs": report.parity_inputs,
                    "experts_unused": report.experts_unused,
                },
                indent=2,
            )
        )
    else:
        print(
            f"wrote {report.path} ({report.metadata.task}, {report.path.stat().st_size} bytes)\n"
            f"ONNX Runtime vs torch: max abs diff {report.max_abs_diff:.3g} on "
            f"{report.parity_batch_size} {report.parity_inputs} tiles "
            f"(tolerance {args.tolerance:g})"
        )
        if report.experts_unused:
            print(
                f"note: {report.experts_unused} MoE experts received no parity token; "
                "give more or larger --parity-raster tiles to compare them too"
            )
    return 0


def _export_quantized(args: argparse.Namespace) -> int:
    """``--quantize``: the float model (exported first from a checkpoint) quantised into --out."""
    from .export.quantize import quantize_model
    from .train.evaluate import evaluate_model

    out = Path(args.out)
    if not args.parity_data and not args.parity_raster:
        raise SystemExit(
            "msgfm export: --quantize needs held-back data to measure the int8 model against the "
            "float one: give --parity-data SPEC and/or --parity-raster SENSOR=PATH"
        )
    float_model = Path(args.onnx) if args.onnx else out.with_name(f".{out.stem}.float32.onnx")
    try:
        if args.checkpoint and _export(_float_export_args(args, float_model)) != 0:
            return 1
        report = quantize_model(
            float_model,
            out,
            parity_data=args.parity_data,
            data_root=args.data_root,
            test_fraction=args.test_fraction,
            split_fold=args.split_fold,
            parity_rasters=args.parity_raster,
            score_model=evaluate_model,
        )
    except (FileNotFoundError, ValueError, KeyError, ModelFileError) as exc:
        raise SystemExit(f"msgfm export: {exc}") from None
    finally:
        if args.checkpoint:
            float_model.unlink(missing_ok=True)
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(report.path),
                    "bytes": report.bytes,
                    "float_bytes": report.source_bytes,
                    "quantization": report.metadata.quantization,
                },
                indent=2,
            )
        )
        return 0
    print(
        f"wrote {report.path} ({args.quantize}, {report.bytes} bytes; float model "
        f"{report.source_bytes} bytes)"
    )
    for line in describe_parity(report.parity):
        print(line)
    return 0


def _float_export_args(args: argparse.Namespace, float_model: Path) -> argparse.Namespace:
    values = dict(vars(args), out=str(float_model), quantize=None, json=False)
    return argparse.Namespace(**values)


def describe_parity(parity: Dict[str, Any]) -> List[str]:
    """Plain-text lines of an int8 model's parity figures (see ``backend/export/quantize.py``)."""
    lines = []
    held = parity.get("held_back")
    if held:
        lines.append(f"held-back {held['data']}: {held['n_samples']} samples, float32 -> int8")
        for name, value in held["float32"].items():
            other = held["int8"].get(name)
            if isinstance(value, float) and isinstance(other, float) and not name.startswith("n_"):
                lines.append(f"  {name}: {value:.4f} -> {other:.4f}")
    outputs = parity.get("outputs")
    if outputs:
        lines.append(f"outputs on {outputs['n_tiles']} tiles of {', '.join(outputs['rasters'])}:")
        for name, figures in outputs["per_output"].items():
            text = ", ".join(f"{key} {value:.4g}" for key, value in figures.items())
            lines.append(f"  {name}: {text}")
    return lines


def read_parity_tiles(
    checkpoint: str, rasters: List[str], tile_size: Optional[int] = None
) -> Dict[str, Any]:
    """Normalised tiles ``{sensor: (N, C, tile, tile)}`` along the diagonal of real rasters.

    Each ``SENSOR=PATH`` raster holds the sensor's bands in canonical order; the rasters must be
    co-registered (same size). Statistics are the checkpoint's (a sensor it has none for is an
    error).
    """
    import numpy as np
    import rasterio

    from .checkpoints import META_FILE, resolve_checkpoint
    from .data.tasks.normalization import sensor_with_stats
    from .sensors import get_sensor, normalize

    folder = resolve_checkpoint(checkpoint)
    if folder is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint}")
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    if "task_spec" in meta:
        tile = int(meta["task_spec"]["image_size"])
    else:
        tile = int(tile_size or meta["model_config"]["image_size"])
    tiles = {}
    shape = None
    for item in rasters:
        sensor, sep, path = item.partition("=")
        if not sep or not path:
            raise ValueError(f"--parity-raster {item!r}: write it as SENSOR=PATH")
        sensor = sensor.strip().lower()
        # The registry entry says the band layout; the checkpoint's statistics (required: a
        # sensor without them was never trained) normalise the tiles.
        entry = get_sensor(sensor)
        with rasterio.open(Path(path)) as dataset:
            if dataset.count != entry.num_bands:
                raise ValueError(
                    f"--parity-raster {sensor}={path} has {dataset.count} bands; the {sensor} "
                    f"input takes {entry.num_bands} ({', '.join(entry.bands)}) in that order"
                )
            if shape is not None and (dataset.height, dataset.width) != shape:
                raise ValueError("--parity-raster rasters must be co-registered (same size)")
            shape = (dataset.height, dataset.width)
            if min(shape) < tile:
                raise ValueError(f"--parity-raster {path} is smaller than the {tile} px tile")
            image = dataset.read(masked=True).astype(np.float32).filled(np.nan)
        rows = np.linspace(0, shape[0] - tile, PARITY_TILES).astype(int)
        cols = np.linspace(0, shape[1] - tile, PARITY_TILES).astype(int)
        crops = np.stack([image[:, r : r + tile, c : c + tile] for r, c in zip(rows, cols)])
        entry = sensor_with_stats(sensor, meta.get("normalization"))
        tiles[sensor] = np.nan_to_num(normalize(entry, crops), nan=0.0)
    return tiles
