"""Peak memory and page faults of one engine run on a bundled model, with a chosen heap-trim margin.

What the heap trimmer's margin (:mod:`backend.inference.heap`) trades: trimming gives freed pages
back (flatter peak memory), and the next chunk's arrays fault them in again (system CPU time).
One run in this process, inputs as ``bench_shipped.py``'s:

    .venv/bin/python benchmarks/inference/probe_memory.py --size 2048 --margin-mib 8

prints the peak RSS (``VmHWM``), the minor page faults, the process' CPU seconds and the number of
trims as one JSON line. One run is one sample on a shared machine: compare margins in alternation.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--margin-mib", type=float, help="heap-trim margin (default: the engine's)")
    parser.add_argument("--model", help="a name in resources/models or a path (default: bundled)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/msgfm/bench")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    from bench_shipped import BATCH, bundled_models, model_path, peak_rss_mib
    from shipped_inputs import build_input

    import backend.inference.engine as engine
    import backend.inference.heap as heap
    from backend.data.fetch import ensure_sample_data
    from backend.export.schema import read_model_metadata
    from backend.inference.inputs import RasterInput

    model = model_path(args.model or bundled_models()[0])
    samples = ensure_sample_data()
    inputs = []
    for spec in read_model_metadata(model).inputs:
        grid = inputs[0].path if inputs else None
        raster = build_input(spec.sensor, args.size, args.cache, samples, grid)
        inputs.append(RasterInput(spec.sensor, raster))
    margin = heap.TRIM_MARGIN if args.margin_mib is None else int(args.margin_mib * 2**20)
    trimmers = []

    class Counted(heap.HeapTrimmer):
        def __init__(self, margin: int = margin):
            super().__init__(margin)
            trimmers.append(self)

    engine.HeapTrimmer = Counted  # the name the engine's run looks up
    with tempfile.TemporaryDirectory() as scratch:
        # L1C S2 input for an L2A model: measured, not judged (see bench_shipped.worker).
        out = Path(scratch) / "out.tif"
        engine.run_inference(model, inputs, out, batch_size=BATCH, run_anyway=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "model": model.stem, "size": args.size, "margin_mib": margin / 2**20,
        "peak_rss_mib": round(peak_rss_mib(), 1), "minor_faults": usage.ru_minflt,
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "trims": sum(t.trims for t in trimmers),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
