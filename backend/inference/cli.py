"""`msgfm predict` (tiled raster inference with an ONNX model) and `msgfm worker`."""

from __future__ import annotations

import argparse
import json
import sys

_PREDICT_HELP = """Run an msGFM ONNX model over georeferenced rasters and write GeoTIFF output(s).

The first --input is the reference grid: outputs get its CRS, transform, size and nodata. Other
inputs are warped onto it. Bands are 1-based and given in the model's band order
(`msgfm info MODEL` lists the sensors and bands a model expects).

Example:
  msgfm predict --model landcover.onnx --input landsat=scene.tif:1,2,3,4,5,6 --out classes.tif
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    predict = subparsers.add_parser(
        "predict",
        help="run an ONNX model over rasters (tiled, blended, nodata-aware)",
        description=_PREDICT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("--model", required=True, help="the .onnx model (with msGFM metadata)")
    predict.add_argument(
        "--input",
        required=True,
        action="append",
        metavar="SENSOR=PATH[:b1,b2,...]",
        help=(
            "an input raster for a model sensor, optionally with 1-based bands; repeat per "
            "sensor. A sensor the model lists as optional (msgfm info; e.g. the SAR of a "
            "cloud-removal model trained with S2-only samples) may be left out"
        ),
    )
    predict.add_argument("--out", required=True, help="output GeoTIFF (more outputs go beside it)")
    predict.add_argument("--tile", type=int, help="tile size in pixels (default: the model's)")
    predict.add_argument(
        "--overlap", type=float, help="overlap between tiles, fraction of a tile (default: model's)"
    )
    predict.add_argument("--batch", type=int, default=4, help="tiles per model call (default 4)")
    predict.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    predict.add_argument(
        "--threads", type=int, help="ONNX Runtime intra-op threads (default: all usable cores)"
    )
    predict.add_argument(
        "--reflectance-dtype",
        choices=("input", "float32"),
        default="input",
        help="reflectance outputs in the integer type of their sensor's input, rounded (default; "
        "uint16 reflectance x 10000 for Sentinel-2), or float32 with the fractions",
    )
    predict.add_argument(
        "--scene-grid",
        metavar="GRID.gpkg",
        help="scene classification: also write one polygon per window with its top classes",
    )
    predict.add_argument(
        "--run-anyway",
        action="store_true",
        help="run on inputs that look out of the model's domain (values far from its training "
        "statistics, unnamed bands in a doubtful order) instead of refusing them",
    )
    predict.add_argument("--quiet", action="store_true", help="no progress on stderr")
    predict.set_defaults(func=_predict)

    worker = subparsers.add_parser(
        "worker",
        help="serve jobs as JSON lines on stdin/stdout (the QGIS plugin's subprocess backend)",
        description="Read one JSON request per line on stdin; write progress, result or error "
        "events as JSON lines on stdout. See backend/worker/server.py for the protocol.",
    )
    worker.set_defaults(func=_worker)


def _predict(args: argparse.Namespace) -> int:
    from .engine import run_inference
    from .errors import InferenceCancelledError, InferenceError
    from .inputs import parse_input

    reported = [-1]

    def progress(fraction: float, message: str) -> None:
        percent = int(fraction * 100)
        if percent // 10 > reported[0] // 10:  # one line per 10 %
            reported[0] = percent
            print(f"msgfm predict: {percent:3d}% {message}", file=sys.stderr, flush=True)

    _stop_on_sigterm()
    try:
        result = run_inference(
            args.model,
            [parse_input(text) for text in args.input],
            args.out,
            tile_size=args.tile,
            overlap=args.overlap,
            batch_size=args.batch,
            device=args.device,
            threads=args.threads,
            progress=None if args.quiet else progress,
            reflectance_dtype=args.reflectance_dtype,
            scene_grid=args.scene_grid,
            run_anyway=args.run_anyway,
            warn=lambda message: print(
                f"msgfm predict: warning: {message}", file=sys.stderr, flush=True
            ),
        )
    except KeyboardInterrupt:
        print("msgfm predict: interrupted; no output written", file=sys.stderr)
        return 130
    except InferenceCancelledError:
        print("msgfm predict: cancelled; no output written", file=sys.stderr)
        return 130
    except InferenceError as exc:
        print(f"msgfm predict: {exc}", file=sys.stderr)
        return 1
    for sensor in result.absent_inputs:
        print(
            f"msgfm predict: ran WITHOUT {sensor}: fed as the model's training fed its samples "
            f"without {sensor} (the output's MSGFM_RUN_MODE tag says so too)",
            file=sys.stderr,
        )
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def _stop_on_sigterm() -> None:
    """Let SIGTERM (``kill``, a job scheduler) stop a run like Ctrl+C: its partial output is
    removed on the way out instead of being left beside the destination."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def _worker(args: argparse.Namespace) -> int:
    from ..worker.server import main

    return main([])
