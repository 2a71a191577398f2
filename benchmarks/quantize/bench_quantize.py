"""Int8 against float32 for every bundled model: held-back scores, output parity, size and speed.

Each bundled model in ``resources/models`` is quantised with the code of
``msgfm export --quantize int8`` (``backend/export/quantize.py``). Task models are scored, float32
and int8, on the held-back split of the data spec they were finetuned on (the one their
``MANIFEST.json`` entry names, split as in training); the embedding model, which has no task
scores, is compared output against output on real Sentinel-2 tiles. Speed: ``session.run`` on the
same batch of 8 tiles, float32 and int8 alternately, best of ``--repeats``, sessions opened as the
engine opens them.

Run from the repository root (sample data fetched):

    .venv/bin/python benchmarks/quantize/bench_quantize.py

It writes ``benchmarks/quantize/results/results.json``; ``benchmarks/inference/report.py`` puts it
into ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BATCH = 8


def speed(float_model: Path, int8_model: Path, repeats: int) -> Dict[str, float]:
    """Best ``session.run`` seconds of a batch of ``BATCH`` tiles, float32 and int8 alternately."""
    import numpy as np

    from backend.export.schema import read_model_metadata
    from backend.inference.session import create_session

    metadata = read_model_metadata(float_model)
    rng = np.random.default_rng(0)
    t = metadata.tile_size
    feeds = {
        spec.name: rng.standard_normal((BATCH, len(spec.bands), t, t)).astype(np.float32)
        for spec in metadata.inputs
    }
    sessions = {
        "float32": create_session(float_model, "cpu")[0],
        "int8": create_session(int8_model, "cpu")[0],
    }
    best = {name: float("inf") for name in sessions}
    for session in sessions.values():
        session.run(None, feeds)  # first call: memory planning
    for _ in range(repeats):
        for name, session in sessions.items():
            started = time.perf_counter()
            session.run(None, feeds)
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "resources/models")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache/msgfm/bench", help="raster cache"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks" / "inference"))
    from bench_inference import build_raster, cpu_model, versions

    from backend.data.fetch import ensure_sample_data
    from backend.export.quantize import quantize_model

    manifest = json.loads((args.models / "MANIFEST.json").read_text())
    s2_raster = build_raster(args.cache / "s2_l1c_512.tif", 512, ensure_sample_data())
    results = []
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for entry in manifest["files"]:
            if not entry["file"].endswith(".onnx"):
                continue
            model = args.models / entry["file"]
            out = Path(tmp) / f"{model.stem}-int8.onnx"
            parity: Dict[str, Any] = {}
            if entry.get("data"):
                parity["parity_data"] = entry["data"]
            else:  # no task scores: compare outputs on real Sentinel-2 tiles
                parity["parity_rasters"] = [f"s2={s2_raster}"]
            load_before = os.getloadavg()[0]
            report = quantize_model(model, out, **parity)
            results.append(
                {
                    "model": entry["file"],
                    "task": entry["task"],
                    "float_bytes": report.source_bytes,
                    "int8_bytes": report.bytes,
                    "parity": report.parity,
                    "batch_seconds": speed(model, out, args.repeats),
                    "load": [load_before, os.getloadavg()[0]],
                }
            )
            print(json.dumps(results[-1]), flush=True)
    report_json = {
        "command": "python benchmarks/quantize/bench_quantize.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0))},
        "versions": versions(),
        "batch": BATCH,
        "repeats": args.repeats,
        "started_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
        "results": results,
    }
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(report_json, indent=2) + "\n")
    print(f"wrote {out_dir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
