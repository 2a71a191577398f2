"""The "pretraining step" section of ``docs/benchmarks.md``, from ``bench_step.py``'s results.

    .venv/bin/python benchmarks/pretrain/report_step.py [RESULTS ...] [--out docs/benchmarks.md]

replaces the section between its markers in the page (or adds it after the shipped-models
section); ``benchmarks/inference/report.py`` keeps it when it rewrites the page.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results" / "step.json"
BEGIN, END = "<!-- pretrain-step:begin -->", "<!-- pretrain-step:end -->"
AFTER = "<!-- shipped:end -->"
TARGET_PEAK, TARGET_DATA = 0.25, 0.05

DESCRIPTIONS = {
    "baseline": "as before: AdamW one tensor at a time, crops decoded by each process",
    "fused": "fused AdamW (the trainer's optimiser now)",
    "cache": "fused AdamW + crops from the memory-mapped crop cache (`--crop-cache`)",
    "threads1": "`cache` with one intra-op thread instead of torch's default (one per core)",
    "workers1": "`cache` with one DataLoader worker process feeding the loop",
    "threads1_workers1": "`threads1` with one DataLoader worker (compute on one core, data on "
    "the other)",
    "small": "`cache` with the `small` config (twice as wide)",
    "batch32": "`cache` with 32 crops a step",
}


def _pair(values: List[float], fmt: str) -> str:
    return " / ".join(format(v, fmt) for v in values) if values else "–"


def _per_round_ratio(records: List[Dict[str, Any]], name: str, base: str) -> List[float]:
    """Median step of the baseline / of ``name`` in the same round (the same load)."""
    ratios = []
    for round_index in sorted({r["round"] for r in records}):
        this = {r["variant"]: r for r in records if r["round"] == round_index}
        if name in this and base in this:
            a = statistics.median(s["step_s"] for s in this[base]["steps"])
            b = statistics.median(s["step_s"] for s in this[name]["steps"])
            ratios.append(a / b)
    return ratios


def section(documents: Any, paths: Optional[List[str]] = None) -> List[str]:
    """The section's lines for one run's results (a dict) or several runs' (a list)."""
    if isinstance(documents, dict):
        documents = [documents]
    paths = paths or ["benchmarks/pretrain/results/step.json"] * len(documents)
    lines = [
        BEGIN,
        "## Pretraining step",
        "",
        "Commands (repository root, sample data fetched), then `report_step.py` for this section:",
        "",
        "```",
    ]
    for document, path in zip(documents, paths):
        command = document.get("command") or (
            f"python benchmarks/pretrain/bench_step.py --rounds {document['rounds']} "
            f"--steps {document['steps']} --out {path}"
        )
        lines.append(".venv/bin/" + command)
    lines += [f".venv/bin/python benchmarks/pretrain/report_step.py {' '.join(paths)}", "```", ""]
    machine = documents[0]["machine"]
    lines += [
        f"Processor: {machine['processor']}, {machine['cores']} cores; Python {machine['python']}, "
        f"torch {machine['torch']}, numpy {machine['numpy']}. **The machine was shared** with "
        "other agents' tests and runs (load averages below; 2 is both cores busy), so absolute "
        "times are slower and noisier than on an idle machine; compare variants within a run.",
        "",
        "The step is the shipped recipe's (`lite`, the `samples` manifest, 16 crops, the shipped "
        "encoder's band statistics, jitter 0.2): forward, backward, gradient clipping, AdamW. "
        "FLOPs are counted by `torch.utils.flop_counter` on every timed batch (forward + "
        "backward). The GEMM peak is a square fp32 `torch.mm` of about the step's FLOPs "
        "(n = matmul side), timed in the same process after each step: each step's share of the "
        "peak is against its neighbouring matmul, so both saw the same load. Each variant ran in "
        "a fresh process, in rotating order over the rounds, with 2 warm-up steps; figures are "
        "min / median over all timed steps (share of peak: best / median); speed-ups are the "
        "baseline's median step over the variant's in the same round.",
    ]
    for number, document in enumerate(documents, 1):
        lines += ["", *run_tables(document, number if len(documents) > 1 else None)]
    lines += ["", *verdict([d["summary"] for d in documents]), END]
    return lines


def run_tables(document: Dict[str, Any], number: Optional[int]) -> List[str]:
    """One run's header and its two tables."""
    summary = document["summary"]
    records = document["records"]
    loads = [r[k] for r in records for k in ("load_before", "load_after")]
    base = "baseline" if "baseline" in summary else "cache"
    lines = [
        (f"### Run {number}: " if number else "### ") + ", ".join(summary),
        "",
        f"Started {document['started']}, {document['minutes']:.0f} min, {document['rounds']} "
        f"rounds of {document['steps']} timed steps per variant; 1-minute load average "
        f"{min(loads):.1f} to {max(loads):.1f}.",
        "",
        "| variant | what | config | batch | threads | GFLOP/step | step s | forward s | "
        "backward s | optimiser s | step GFLOP/s (best) | share of GEMM peak | "
        f"GEMM peak GFLOP/s (n) | speed-up over {base} (per round) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        ratios = _per_round_ratio(records, name, base) if name != base else []
        lines.append(
            f"| {name} | {DESCRIPTIONS.get(name, '')} | {row['config']} | {row['batch']} | "
            f"{row['threads']} | {row['gflop_per_step']:.2f} | {_pair(row['step_s'], '.3f')} | "
            f"{_pair(row['forward_s'], '.3f')} | {_pair(row['backward_s'], '.3f')} | "
            f"{_pair(row['optimizer_s'], '.3f')} | "
            f"{row['gflop_per_step'] / row['step_s'][0]:.1f} | "
            f"**{_pair([100 * f for f in row['fraction_of_peak']], '.1f')} %** | "
            f"{row['peak_gflops']:.0f} ({row['matmul_n']}) | "
            f"{', '.join(f'{r:.2f}x' for r in ratios) if ratios else '–'} |"
        )
    if any(row["threads"] == 1 for row in summary.values()):
        lines += [
            "",
            "A one-thread variant runs its matmul with the same single thread, so its share is of "
            "one core's GEMM peak; compare step GFLOP/s across variants for the machine.",
        ]
    lines += [
        "",
        "Data pipeline, same processes: **data s** = drawing and collating one batch in the "
        "training process (what `--num-workers 0` adds to every step), and its share of "
        "data + step; **loop** = the trainer's DataLoader feeding the step (workers as stated), "
        "with the share of the loop spent waiting for the batch; **decode** = decoding every scene "
        "of the manifest once (what each process without the cache pays over its first steps); "
        "**open** = opening the crop cache (built once per key: the run's driver opened or "
        f"built it first, in {document['cache']['first_open_or_build_s']:.0f} s).",
        "",
        "| variant | data s per batch | data share (inline) | loop workers | loop s per step | "
        "waiting share | crops/s | decode s | open s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        workers = next(r["loader_workers"] for r in records if r["variant"] == name)
        lines.append(
            f"| {name} | {_pair(row['data_s'], '.3f')} | "
            f"{_pair([100 * f for f in row['data_share_inline']], '.1f')} % | {workers} | "
            f"{_pair(row['loop_step_s'], '.3f')} | "
            f"{_pair([100 * f for f in row['loop_wait_share']], '.1f')} % | "
            f"{_pair(row['crops_per_s'], '.1f')} | {_pair(row['decode_all_scenes_s'], '.1f')} | "
            f"{_pair(row['open_cache_s'], '.2f')} |"
        )
    return lines


def verdict(summaries: Any) -> List[str]:
    """The issue's targets against the figures, in words computed from them."""
    if isinstance(summaries, dict):
        summaries = [summaries]
    rows = {name: row for summary in reversed(summaries) for name, row in summary.items()}
    first = summaries[0]
    shipped = first.get("cache") or first.get("fused") or next(iter(first.values()))
    share = shipped["fraction_of_peak"]
    data = shipped["data_share_inline"]
    best_name, best = max(rows.items(), key=lambda item: item[1]["fraction_of_peak"][1])
    lines = [
        f"Target of issue 23: the shipped config's step at ≥ {TARGET_PEAK:.0%} of the GEMM peak "
        f"with the data ≤ {TARGET_DATA:.0%} of the step. `lite` with fused AdamW and the crop "
        f"cache: {100 * share[0]:.1f} % best, {100 * share[1]:.1f} % median — **"
        f"{'reached' if share[1] >= TARGET_PEAK else 'not reached'}**; data "
        f"{100 * data[1]:.1f} % of the step (median) — **"
        f"{'reached' if data[1] <= TARGET_DATA else 'not reached'}**. The highest median share "
        f"is {best_name}'s ({100 * best['fraction_of_peak'][1]:.1f} %"
        + (", of one core's peak" if best["threads"] == 1 else "")
        + f"; {best['gflop_per_step'] / best['step_s'][0]:.1f} GFLOP/s at its best step).",
    ]
    same_run = [x for x in summaries if "threads1_workers1" in x and "threads1" in x]
    if same_run:  # compared within one run: the same load
        both, alone = same_run[0]["threads1_workers1"], same_run[0]["threads1"]
        lines[-1] += (
            " With one compute thread and one DataLoader worker (the data on the other core) the "
            f"loop waited for its batch {100 * both['loop_wait_share'][1]:.1f} % of the time "
            f"(median), against {100 * alone['loop_wait_share'][1]:.1f} % for one thread with "
            f"the data inline; {_pair(both['crops_per_s'], '.1f')} crops/s against "
            f"{_pair(alone['crops_per_s'], '.1f')} (best / median)."
        )
    with_small = [x for x in summaries if "small" in x and "cache" in x]
    if with_small:
        small, lite = with_small[0]["small"], with_small[0]["cache"]
        lines[-1] += (
            f" `small` ({small['gflop_per_step'] / lite['gflop_per_step']:.1f}x the FLOPs of a "
            f"`lite` step) ran at {small['gflop_per_step'] / small['step_s'][0]:.1f} GFLOP/s "
            f"against `lite`'s {lite['gflop_per_step'] / lite['step_s'][0]:.1f} at their best "
            f"steps, and {_pair(small['crops_per_s'], '.1f')} crops/s against "
            f"{_pair(lite['crops_per_s'], '.1f')} (best / median, same run): wider uses the "
            "machine better but sees fewer crops a second; whether it learns more per second is "
            "for the long runs to show."
        )
    lines += [
        "",
        "Why the step stays far below the GEMM peak: `lite` is 16 channels wide in stage 1 (and "
        "at most 128 in stage 4), so its matrix products are thin (K = 16 to 512) and most of "
        "the step is element-wise and layout work (layer norms, GELU, window partition and "
        "merge, the masked L1 over full-resolution reconstructions) whose cost is memory "
        "traffic, not FLOPs. The levers measured here remove overhead around the step (the "
        "optimiser, decoding), not that. The MoE dispatch already loops over experts (2 in "
        "`lite`), never over tokens: each expert gathers its tokens with one `nonzero` and "
        "scatters back with one `index_add`, so there is no Python loop over tokens to remove.",
    ]
    return lines


def replace_section(page: str, lines: List[str]) -> str:
    """``page`` with the section replaced (or inserted after the shipped-models section)."""
    block = "\n".join(lines)
    if BEGIN in page and END in page:
        head, rest = page.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    if AFTER in page:
        head, rest = page.split(AFTER, 1)
        return head + AFTER + "\n\n" + block + rest
    return page.rstrip("\n") + "\n\n" + block + "\n"


def kept_section(page: str) -> Optional[str]:
    """The section as it stands in ``page`` (for ``report.py``, which rewrites the page)."""
    if BEGIN in page and END in page:
        return BEGIN + page.split(BEGIN, 1)[1].split(END, 1)[0] + END
    return None


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", type=Path, default=[RESULTS])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    documents = [json.loads(path.read_text()) for path in args.results]
    paths = [str(path) for path in args.results]
    page = args.out.read_text() if args.out.exists() else "# Benchmarks\n"
    args.out.write_text(replace_section(page, section(documents, paths)))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
