"""Where a bundled model's time goes, operator by operator (ONNX Runtime's own profiler).

For each model, a session with the batch axis free (as the engine opened models before) and one
with it fixed (``create_session(..., batch_size=...)``, as the engine does now) each run the same
batches of real tiles with profiling on; the node events are summed by operator type. Shows how
many nodes run per batch and which operators take the time:

    .venv/bin/python benchmarks/inference/profile_operators.py [--models cloud-removal]

(by default the models ``resources/models/MANIFEST.json`` bundles; a model may be given by path).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BATCH = 4
RUNS = 5


def profile(model: Path, fixed: bool, feed: Dict[str, Any], folder: Path) -> Dict[str, List[float]]:
    """Per operator type: [microseconds per batch, nodes run per batch]."""
    import onnxruntime

    from backend.inference.session import create_session

    # The engine's options (read back from its session, opened without the optimised-model cache
    # so they are the options of the model itself), with ONNX Runtime's profiler on.
    session, _ = create_session(model, "cpu", batch_size=BATCH if fixed else None)
    options = session.get_session_options()
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / ("fixed" if fixed else "free"))
    session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    assert isinstance(session.get_inputs()[0].shape[0], int) == fixed
    for _ in range(RUNS):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    totals: Dict[str, List[float]] = defaultdict(lambda: [0.0, 0.0])
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"].get("op_name", "?")
            totals[op][0] += event["dur"] / RUNS
            totals[op][1] += 1 / RUNS
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="names in resources/models or paths")
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "operators.json")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    os.environ["MSGFM_ORT_CACHE"] = "off"
    import numpy as np
    from bench_shipped import bundled_models, model_path

    from backend.export.schema import read_model_metadata

    folder = Path(tempfile.mkdtemp(prefix="ort-profile-"))
    document = {"batch": BATCH, "runs": RUNS, "models": {}}
    for given in args.models or bundled_models():
        model, name = model_path(given), Path(given).stem
        metadata = read_model_metadata(model)
        tile = metadata.tile_size
        rng = np.random.default_rng(0)  # normalised inputs: the time does not depend on values
        feed = {
            spec.name: rng.standard_normal((BATCH, len(spec.bands), tile, tile), np.float32)
            for spec in metadata.inputs
        }
        for fixed in (False, True):
            totals = profile(model, fixed, feed, folder)
            document["models"].setdefault(name, {})["fixed" if fixed else "free"] = totals
            total = sum(t for t, _ in totals.values())
            nodes = sum(n for _, n in totals.values())
            label = "batch fixed" if fixed else "batch axis free"
            print(f"\n{name}, {label}: {total / 1000:.1f} ms a batch of {BATCH}, {nodes:.0f} nodes")
            ranked = sorted(totals.items(), key=lambda item: -item[1][0])
            for op, (micros, count) in ranked[: args.top]:
                print(
                    f"  {op:<28} {micros / 1000:7.2f} ms {100 * micros / total:5.1f} % {count:5.0f}"
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
