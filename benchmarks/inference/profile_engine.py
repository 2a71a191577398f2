"""Where the engine's CPU time goes on a bundled model: one run under cProfile, threads apart.

The main thread runs the model, blends and writes; a prefetch thread reads, masks and normalises the
next chunk meanwhile (:mod:`backend.inference.prefetch`). cProfile, timed by the main thread's CPU
clock (not wall time: the machine is shared), sees the main thread only; the prefetch thread's CPU
time is taken from the thread itself, and ONNX Runtime's own threads are in the process's CPU time
only. Inputs as ``bench_shipped.py``'s:

    .venv/bin/python benchmarks/inference/profile_engine.py --size 2048 [--model cloud-removal]

writes ``benchmarks/inference/results/engine-profile.json`` (``report_shipped.py`` shows it).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# Main-thread time, by what it is spent in: (label, file suffix, function, cumulative or own time).
PARTS = (
    (
        "ONNX Runtime session.run",
        "~",
        "<built-in method onnxruntime.capi.onnxruntime_pybind11_state.run>",
        "own",
    ),
    ("writing the GeoTIFF (GDAL, compression)", "writers.py", "_write_blocks", "cum"),
    ("scale, clip and range of each finished chunk", "outputs.py", "_finalize", "cum"),
    ("weighted mean of each finished chunk", "blending.py", "weighted_mean", "cum"),
    ("blending tiles into the chunk", "blending.py", "add_weighted", "own"),
    ("copying tiles into the batch", "engine.py", "_place_tile", "cum"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--model", help="a name in resources/models or a path (default: bundled)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/msgfm/bench")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "engine-profile.json")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    from bench_shipped import BATCH, bundled_models, model_path
    from shipped_inputs import build_input

    import backend.inference.engine as engine
    from backend.data.fetch import ensure_sample_data
    from backend.export.schema import read_model_metadata
    from backend.inference.inputs import RasterInput

    given = args.model or bundled_models()[0]
    model = model_path(given)
    samples = ensure_sample_data()
    inputs = []
    for spec in read_model_metadata(model).inputs:
        grid = inputs[0].path if inputs else None
        inputs.append(
            RasterInput(spec.sensor, build_input(spec.sensor, args.size, args.cache, samples, grid))
        )

    threads: Dict[str, float] = {}
    prefetched = engine.prefetched

    def timed(produce, *a, **k):
        def items():
            yield from produce()
            threads["prefetch"] = time.thread_time()  # this thread's CPU, all of it

        return prefetched(items, *a, **k)

    engine.prefetched = timed
    profiler = cProfile.Profile(time.thread_time)  # CPU seconds of the main thread, not wall
    with tempfile.TemporaryDirectory() as scratch:
        cpu, main_cpu, wall = time.process_time(), time.thread_time(), time.perf_counter()
        profiler.enable()
        # L1C S2 input for an L2A model: timed, not judged (see bench_shipped.worker).
        engine.run_inference(
            model, inputs, Path(scratch) / "out.tif", batch_size=BATCH, run_anyway=True
        )
        profiler.disable()
        cpu, main_cpu = time.process_time() - cpu, time.thread_time() - main_cpu
        wall = time.perf_counter() - wall
    stats = pstats.Stats(profiler).stats
    parts = {}
    for label, suffix, function, which in PARTS:
        parts[label] = sum(
            own if which == "own" else cumulative
            for (filename, _, name), (_, _, own, cumulative, _) in stats.items()
            if name == function and filename.endswith(suffix)
        )
    document = {
        "model": Path(given).stem, "size": args.size, "batch": BATCH, "wall_seconds": wall,
        "process_cpu_seconds": cpu, "main_thread_cpu_seconds": main_cpu,
        "prefetch_thread_cpu_seconds": threads.get("prefetch"), "main_thread_cpu_seconds_in": parts,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps(document, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
