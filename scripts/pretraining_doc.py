"""docs/pretraining.md: the pretraining recipe search, from docs/pretraining-results.json.

Two sub-commands:

``collect`` adds (or replaces) one variant of the search in the results file, from its runs' output
folders: each run's probe curve (the ``probe_*`` records pretraining logs with ``--probe-every``)
and, when the run folder holds a ``probe.json`` written by ``msgfm probe --out``, the full probe
beside random-init encoders and band statistics.

``render`` writes the page; ``--check`` fails when the page differs from what the results give, so
the page cannot drift from its figures (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

SET = "bigearthnet-s2"
KEYS = ("linear_map_micro", "knn_map_micro", "effective_rank")


def _curve(run: Path) -> List[Dict[str, float]]:
    points = []
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        return points
    for line in metrics.read_text().splitlines():
        record = json.loads(line)
        # Pretraining probes the validation part of the set (older runs: the whole set).
        for name in (f"{SET}-validation", SET):
            if f"probe_{name}_linear_map_micro" in record:
                points.append(
                    {"step": record["step"], **{k: record[f"probe_{name}_{k}"] for k in KEYS}}
                )
                break
    return points


def _probe_summary(report: Dict[str, Any]) -> Dict[str, Any]:
    # A probe of the final part (msgfm probe --part final), or of every patch (older runs).
    entry = report["sets"].get(f"{SET}-final") or report["sets"][SET]
    summary = {"n_patches": entry["n_patches"], "encoder": {k: entry["encoder"][k] for k in KEYS}}
    if "random_init" in entry:
        summary["random_init"] = [{k: r[k] for k in KEYS} for r in entry["random_init"]]
        summary["random_init_mean"] = {k: entry["random_init_mean"][k] for k in KEYS}
        summary["margin_over_random"] = entry["margin_over_random"]
    if "band_statistics" in entry:
        summary["band_statistics"] = {k: entry["band_statistics"][k] for k in KEYS}
    return summary


def collect(args) -> int:
    path = Path(args.results)
    results = json.loads(path.read_text()) if path.is_file() else {"variants": []}
    runs = []
    for folder in map(Path, args.runs):
        run: Dict[str, Any] = {"run": folder.name, "curve": _curve(folder)}
        meta = folder / "checkpoint-last" / "meta.json"
        if meta.is_file():
            meta_data = json.loads(meta.read_text())
            run["steps"] = meta_data.get("step")
            run["seed"] = meta_data.get("seed", args.seed)
        probe = folder / (args.probe_file or "probe.json")
        if probe.is_file():
            run["probe"] = _probe_summary(json.loads(probe.read_text()))
        runs.append(run)
    variant = {
        "name": args.name,
        "description": args.description,
        "command": args.command,
        "shipped": bool(args.shipped),
        "runs": runs,
    }
    results["variants"] = [v for v in results["variants"] if v["name"] != args.name] + [variant]
    path.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def _f(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pm(value: Any, error: Any, digits: int = 3) -> str:
    text = _f(value, digits)
    return text if error is None or value is None else f"{text} ± {_f(error, digits)}"


def render_long_runs(long: Dict[str, Any]) -> List[str]:
    """The long runs' section: every scored checkpoint, the selection and the final scores."""
    lines = [
        "## Long runs: validation curves, selection, one final score",
        "",
        "`make pretrain-long` (scripts/pretrain_long.py): the `lite` encoder on the samples corpus "
        "with the shipped recipe's statistics and jitter, batch 16, 20,000 steps per run, one "
        "thread, resumable; recipes *align* (masked modelling + cross-view alignment) and "
        "*align-vicreg* (the same + VICReg variance/covariance terms on the pooled multi-stage "
        "embedding), seeds 0, 1 and 2. Every kept checkpoint (one per 2,000 steps) is scored by `make "
        "pretrain-long-evaluate` (backend/train/long_runs.py) on the *validation* half of the BigEarthNet "
        "probe (Sentinel-2 L2A, normalised with L2A statistics although the corpus' Sentinel-2 "
        "is L1C; and the Sentinel-1 VV band as the corpus' `sar_vv`), beside a random-init "
        "encoder arm of the same config (3 seeds), and by the held-out reconstruction check: the "
        "masked L1 of the model on those patches with fixed masks against predicting each masked "
        "pixel by its crop's visible mean (ratio < 1: the model uses more than the crop's "
        "average). The same check on 24 crops of the corpus' own Sentinel-2 scenes (*seen*: "
        "scenes the run trains on) shows whether what it learned holds beyond them. Standard errors: bootstrap "
        "over patches. `make pretrain-long-final` selects and scores the final half once, when "
        "every run has finished.",
        "",
    ]
    for name, run in sorted(long.get("runs", {}).items()):
        steps = sorted(run["checkpoints"], key=int)
        if not steps:
            continue
        lines += [
            f"### {name}",
            "",
            "| step | S2 val. linear µmAP | margin over random init | k-NN µmAP | rank | "
            "S1-VV val. linear µmAP | held-out masked L1 / visible mean | held-out rank | "
            "seen S2 crops: masked L1 / visible mean |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for step in steps:
            c = run["checkpoints"][step]
            s2 = c["sets"].get("bigearthnet-s2-validation")
            vv = c["sets"].get("bigearthnet-s1-vv-validation")
            check = c.get("heldout", {}).get("bigearthnet-s2-validation", {})
            cells = [step]
            if s2:
                cells += [
                    _pm(s2["encoder"]["linear_map_micro"], s2.get("encoder_se")),
                    f"{s2['margin_over_random']:+.3f} ± {_f(s2.get('margin_over_random_se'))}",
                    _f(s2["encoder"]["knn_map_micro"]),
                    _f(s2["encoder"]["effective_rank"], 1),
                ]
            else:
                cells += ["–"] * 4
            cells.append(
                _pm(vv["encoder"]["linear_map_micro"], vv.get("encoder_se")) if vv else "–"
            )
            if check:
                cells += [
                    f"{_f(check['masked_l1'])} / {_f(check['visible_mean_l1'])} "
                    f"({_f(check['l1_over_visible_mean'], 2)})",
                    _f(check["effective_rank"], 1),
                ]
            else:
                cells += ["–", "–"]
            seen = c.get("seen", {}).get("s2")
            cells.append(
                f"{_f(seen['masked_l1'])} / {_f(seen['visible_mean_l1'])} "
                f"({_f(seen['l1_over_visible_mean'], 2)})"
                if seen
                else "–"
            )
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    selection = long.get("selection")
    summary = long.get("final_summary")
    if not selection or not summary:
        lines += [
            "The runs are not finished: no checkpoint has been selected and the final half of "
            "the probe has not been read.",
            "",
        ]
        return lines
    lines += [
        "Selection (validation half only): "
        + ", ".join(
            f"{name} step {c['step']} ({_f(c['score'])})"
            for name, c in sorted(selection["runs"].items())
        )
        + "; recipe means "
        + ", ".join(
            f"{recipe} {_f(mean)}" for recipe, mean in sorted(selection["recipe_means"].items())
        )
        + f"; winner **{selection['winner']}**.",
        "",
    ]
    lines += [
        "Final half, scored once (mean over seeds of the linear µmAP margin over random init; "
        "95 % interval of a bootstrap over the final patches, paired across seeds):",
        "",
        "| recipe | seeds | patches | margin | 95 % interval | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for recipe, m in sorted(summary.items()):
        low, high = m["interval"]
        verdict = (
            "beats random init"
            if low is not None and low > 0
            else "below random init"
            if high is not None and high < 0
            else "no difference shown"
        )
        lines.append(
            f"| {recipe} | {m['encoders']} | {m['patches']} | {m['margin']:+.3f} | "
            f"[{_f(low)}, {_f(high)}] | {verdict} |"
        )
    lines.append("")
    return lines


def render_page(results: Dict[str, Any], long: Optional[Dict[str, Any]] = None) -> str:
    lines = [
        "# Pretraining: the recipe search and its probe",
        "",
        "<!-- Generated by scripts/pretraining_doc.py from docs/pretraining-results.json; "
        "do not edit by hand. -->",
        "",
        "What a pretrained msGFM encoder is worth is what its embeddings carry to imagery it never "
        "saw. `msgfm probe` measures it on the labelled patches the project has and pretraining "
        "never reads: the 14 BigEarthNet Sentinel-2 patches (bigearthnet-common and "
        "bigearthnet-gdf-builder, 19-class multi-labels). Each patch is embedded as the exported "
        "embedding model embeds it (all four stages pooled onto the stride-32 grid, "
        "`backend/models/embedding_head.py`), mean-pooled, and scored leave-one-patch-out by a "
        "linear probe (L2 logistic regression, its weight chosen by an inner leave-one-out) and a "
        "k-NN probe (k = 3, cosine); the effective rank (RankMe) of the tile embeddings shows "
        "collapse. Every encoder is set beside randomly initialised encoders of the same config "
        "(3 seeds, same normalisation) and raw band statistics (per-band mean and standard "
        "deviation). 14 patches is very few: a difference of a few hundredths is within what "
        "another random seed gives, so a recipe counts only when it beats the random-init mean on "
        "every pretraining seed.",
        "",
        "Figures: linear µmAP / k-NN µmAP / effective rank on the S2 patches; *margin* is the "
        "encoder's linear µmAP minus the mean of the random-init encoders'.",
        "",
    ]
    if long:
        lines += render_long_runs(long)
    for variant in results["variants"]:
        title = variant["name"] + (" (shipped)" if variant.get("shipped") else "")
        lines += [f"## {title}", "", variant["description"], "", f"`{variant['command']}`", ""]
        probed = [r for r in variant["runs"] if "probe" in r]
        if probed:
            lines += [
                "| run | steps | encoder | random init (mean of 3) | band statistics | margin |",
                "|---|---|---|---|---|---|",
            ]
            for run in probed:
                p = run["probe"]

                def cell(scores):
                    if not scores:
                        return "–"
                    return " / ".join(
                        _f(scores[k], 1 if k == "effective_rank" else 3) for k in KEYS
                    )

                margin = p.get("margin_over_random")
                margin_text = "–" if margin is None else f"{margin:+.3f}"
                lines.append(
                    f"| {run['run']} | {run.get('steps', '–')} | {cell(p['encoder'])} | "
                    f"{cell(p.get('random_init_mean'))} | {cell(p.get('band_statistics'))} | "
                    f"{margin_text} |"
                )
            lines.append("")
        curves = [r for r in variant["runs"] if r.get("curve")]
        if curves:
            lines += ["Probe during pretraining (linear µmAP / k-NN µmAP / effective rank):", ""]
            lines += [
                "| run | " + " | ".join(f"step {p['step']}" for p in curves[0]["curve"]) + " |"
            ]
            lines += ["|---|" + "---|" * len(curves[0]["curve"])]
            for run in curves:
                cells = [
                    f"{_f(p['linear_map_micro'])} / {_f(p['knn_map_micro'])} / "
                    f"{_f(p['effective_rank'], 1)}"
                    for p in run["curve"]
                ]
                lines.append(f"| {run['run']} | " + " | ".join(cells) + " |")
            lines.append("")
    for note in results.get("notes", []):
        lines += [note, ""]
    return "\n".join(lines).rstrip() + "\n"


def shipped_summary(results: Dict[str, Any]) -> str:
    """The shipped recipe's probe per pretraining seed, for docs/evaluation.md."""
    shipped = [v for v in results["variants"] if v.get("shipped")]
    if not shipped:
        return ""
    variant = shipped[-1]
    lines = [
        "## Does pretraining learn? The representation probe",
        "",
        f"The shipped pretraining recipe ({variant['name']}), probed by `msgfm probe` on the "
        "14 BigEarthNet Sentinel-2 patches no pretraining run reads (leave-one-patch-out, "
        "micro mAP), beside 3 randomly initialised encoders of the same config and raw band "
        "statistics. Every variant tried, failures included, and the probe curves are in "
        "[pretraining.md](pretraining.md).",
        "",
        "| pretraining seed | encoder linear | random init linear (3 seeds) | band statistics "
        "linear | margin over random | encoder k-NN | random k-NN |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in variant["runs"]:
        p = run.get("probe")
        if not p:
            continue
        randoms = ", ".join(_f(r["linear_map_micro"]) for r in p.get("random_init", []))
        seed = run.get("seed")
        lines.append(
            f"| {run['run'].replace('seed', '') if seed is None else seed} | {_f(p['encoder']['linear_map_micro'])} | "
            f"{_f(p['random_init_mean']['linear_map_micro'])} ({randoms}) | "
            f"{_f(p['band_statistics']['linear_map_micro'])} | "
            f"{p['margin_over_random']:+.3f} | {_f(p['encoder']['knn_map_micro'])} | "
            f"{_f(p['random_init_mean']['knn_map_micro'])} |"
        )
    lines.append("")
    for note in results.get("summary_notes", []):
        lines += [note, ""]
    return "\n".join(lines)


def render(args) -> int:
    results = json.loads(Path(args.results).read_text())
    long_path = Path(args.long_results)
    long = json.loads(long_path.read_text()) if long_path.is_file() else None
    page = render_page(results, long)
    out = Path(args.out)
    if args.check:
        if not out.is_file() or out.read_text() != page:
            print(f"{out} is out of date: run scripts/pretraining_doc.py render", file=sys.stderr)
            return 1
        return 0
    out.write_text(page)
    print(out)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command_name", required=True)
    add = sub.add_parser("collect", help="add a variant from its run folders")
    add.add_argument("--results", default="docs/pretraining-results.json")
    add.add_argument("--name", required=True)
    add.add_argument("--description", required=True)
    add.add_argument("--command", required=True, help="the command that trains one run")
    add.add_argument("--shipped", action="store_true")
    add.add_argument("--seed", type=int, default=None)
    add.add_argument("--probe-file", default=None, help="probe JSON name in each run folder")
    add.add_argument("runs", nargs="+")
    add.set_defaults(func=collect)
    page = sub.add_parser("render", help="write docs/pretraining.md")
    page.add_argument("--results", default="docs/pretraining-results.json")
    page.add_argument("--out", default="docs/pretraining.md")
    page.add_argument(
        "--long-results",
        default=str(Path(__file__).resolve().parents[1] / "docs" / "pretraining-long-results.json"),
        help="scripts/pretrain_long.py's evaluation (runs/long/evaluation.json), when there is one",
    )
    page.add_argument("--check", action="store_true")
    page.set_defaults(func=render)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
