"""The ablation report: summaries over seeds, paired differences with intervals, and the
Markdown tables of ``docs/evaluation.md`` (``msgfm ablate report``).

msGFM minus each arm is compared in pairs on the same test samples of each seed. Where the
results hold every seed's per-sample scores (``per_sample``, recorded since the evaluation gives
them), the interval is a paired bootstrap over test samples within seeds, combined across seeds
(:func:`backend.train.paired.paired_bootstrap`). Results without them (an older run) get no
interval: the report gives the seeds' *sign agreement* (how many seeds' differences are above
zero), which is what the old "interval over seeds" amounted to, and no verdict.

A finding says "helps" or "hurts" only where the 95 % interval excludes zero; otherwise "no
detectable effect". The report states how many comparisons it makes: at 95 % each, about one in
twenty of them excludes zero by chance where nothing differs.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from .ablation import EVAL_TASKS, UNSEEN, VARIANTS
from .paired import DRAWS, METHOD, paired_bootstrap

SIGN_AGREEMENT = "seed sign agreement (no per-sample scores recorded: no interval, no verdict)"


def _headline(task: str):
    """``(metric, label)`` of a task name (an :data:`EVAL_TASKS` key)."""
    entry = EVAL_TASKS.get(task)
    if entry is None:
        raise ValueError(f"results name task {task!r}, which this version does not know")
    return entry.metric, entry.label


def summarize(results: Sequence[Mapping[str, Any]], task: str, key: str) -> Dict[str, Any]:
    """Mean, standard deviation and per-seed values of one metric per variant (and baseline).

    Returns:
        ``{"variants": {name: {"mean", "std", "values": {seed: value}}}, "baseline": {...},
        "seeds": [...], "n_test": {seed: test samples}}``; ``std`` is the sample standard
        deviation (None for one seed).
    """
    import numpy as np

    rows = [r for r in results if r["task"] == task]
    seeds = sorted({r["seed"] for r in rows})

    def stats(values: Dict[int, float]) -> Dict[str, Any]:
        array = np.asarray([v for v in values.values() if v is not None], dtype=np.float64)
        return {
            "mean": float(array.mean()) if array.size else None,
            "std": float(array.std(ddof=1)) if array.size > 1 else None,
            "values": values,
        }

    variants: Dict[str, Dict[int, float]] = {}
    baseline: Dict[int, float] = {}
    n_test: Dict[int, int] = {}
    for row in rows:
        variants.setdefault(row["variant"], {})[row["seed"]] = row["metrics"].get(key)
        baseline[row["seed"]] = row["baseline"]["metrics"].get(key)
        n_test[row["seed"]] = int(row["n_test"])
    return {
        "variants": {name: stats(values) for name, values in variants.items()},
        "baseline": stats(baseline),
        "seeds": seeds,
        "n_test": n_test,
    }


def paired_differences(
    results: Sequence[Mapping[str, Any]],
    task: str,
    key: str,
    reference: str = "msgfm",
    draws: int = DRAWS,
) -> Dict[str, Dict[str, Any]]:
    """Per variant, ``reference`` minus that variant on the same seeds (same test samples).

    Returns:
        ``{variant: {"mean", "low", "high", "n", "values": {seed: difference}, "method",
        "positive"}}`` over the seeds both have. ``low``/``high`` is the paired bootstrap 95 %
        interval (:func:`backend.train.paired.paired_bootstrap`) when every one of those seeds
        has per-sample scores for both arms, else None with ``method`` :data:`SIGN_AGREEMENT`;
        ``positive`` counts the seeds whose difference is above zero.
    """
    rows: Dict[str, Dict[int, Mapping[str, Any]]] = {}
    for row in results:
        if row["task"] == task and row["metrics"].get(key) is not None:
            rows.setdefault(row["variant"], {})[row["seed"]] = row
    mine = rows.get(reference, {})
    out = {}
    for variant, theirs in rows.items():
        if variant == reference:
            continue
        seeds = sorted(set(theirs) & set(mine))
        if not seeds:
            continue
        differences = {
            s: float(mine[s]["metrics"][key]) - float(theirs[s]["metrics"][key]) for s in seeds
        }
        entry: Dict[str, Any] = {
            "mean": sum(differences.values()) / len(differences),
            "low": None,
            "high": None,
            "n": len(seeds),
            "values": differences,
            "positive": sum(d > 0 for d in differences.values()),
            "method": SIGN_AGREEMENT,
        }
        if all(mine[s].get("per_sample") and theirs[s].get("per_sample") for s in seeds):
            pairs = [(mine[s]["per_sample"], theirs[s]["per_sample"]) for s in seeds]
            interval = paired_bootstrap(pairs, key, draws=draws)
            entry.update(
                low=interval["low"],
                high=interval["high"],
                method=METHOD,
                n_samples=interval["n_samples"],
            )
        out[variant] = entry
    return out


def verdict(entry: Mapping[str, Any]) -> str:
    """What the part that an arm removes does, from msGFM minus the arm (higher is better).

    "helps" or "hurts" only when the 95 % interval excludes zero, else "no detectable effect";
    without an interval (no per-sample scores) there is no verdict.
    """
    if entry["low"] is None:
        return "no verdict (no interval)"
    if entry["low"] > 0:
        return "helps"
    if entry["high"] < 0:
        return "hurts"
    return "no detectable effect"


def _digits(key: str) -> int:
    return 2 if key == "psnr" else 3


def _cell(entry: Mapping[str, Any], digits: int) -> str:
    if entry["mean"] is None:
        return "n/a"
    if entry["std"] is None:
        return f"{entry['mean']:.{digits}f}"
    return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}"


def _tasks_in(results: Sequence[Mapping[str, Any]]) -> List[str]:
    return [t for t in EVAL_TASKS if any(r["task"] == t for r in results)]


def pretraining_sight(results: Sequence[Mapping[str, Any]], task: str) -> str:
    """Whether the pretraining runs saw the task's input sensors (from the msGFM arm's runs)."""
    rows = [
        r for r in results if r["task"] == task and r.get("sensors_seen_in_pretraining") is not None
    ]
    if not rows:
        return "no pretrained arm run"
    seen = {s for r in rows for s in r["sensors_seen_in_pretraining"]}
    inputs = {s for r in rows for s in r["sensors"]}
    if not seen:
        return UNSEEN
    if seen >= inputs:
        return "seen in pretraining"
    return f"partly seen in pretraining ({', '.join(sorted(seen))})"


def _test_counts(summary: Mapping[str, Any]) -> str:
    counts = summary["n_test"]
    return ", ".join(str(counts[s]) for s in summary["seeds"])


def comparison_note(comparisons: int, with_interval: int) -> str:
    """The paragraph above the paired table: the method and the number of comparisons."""
    text = (
        f"Paired by seed, msGFM minus each arm on the same test samples: mean difference over "
        f"seeds and what the part the arm removes does. {comparisons} comparisons"
    )
    if with_interval:
        text += (
            f"; {with_interval} have a 95 % interval from a {METHOD} ({DRAWS} draws). At 95 % "
            f"each, about {0.05 * with_interval:.1f} of them would exclude zero by chance if no "
            "arm made a difference (intervals not adjusted for the number of comparisons)"
        )
    if with_interval < comparisons:
        text += (
            f"; {comparisons - with_interval} rest on results without per-sample scores and "
            "give the seeds' sign agreement only: how many seeds' differences are above zero, "
            "which is not an interval and gives no verdict"
        )
    return text + ". A verdict (helps / hurts) only where the interval excludes zero."


def markdown_tables(results: Sequence[Mapping[str, Any]], draws: int = DRAWS) -> str:
    """The summary (mean ± sd over seeds), the paired differences with intervals (or sign
    agreement), and one per-seed table per task, in Markdown."""
    tasks = _tasks_in(results)
    order = [v for v in VARIANTS if any(r["variant"] == v for r in results)]
    summaries = {t: summarize(results, t, _headline(t)[0]) for t in tasks}
    lines = ["| task | sensors | metric | test samples per seed | " + " | ".join(order)]
    lines[0] += " | *trivial baseline* |"
    lines.append("|---" * (len(order) + 5) + "|")
    for task in tasks:
        key, label = _headline(task)
        summary = summaries[task]
        cells = []
        for name in order:
            entry = summary["variants"].get(name)
            cells.append(_cell(entry, _digits(key)) if entry else "not run")
        cells.append(_cell(summary["baseline"], _digits(key)))
        sight = pretraining_sight(results, task)
        lines.append(
            f"| {task} | {EVAL_TASKS[task].sensors} ({sight}) | {label}, "
            f"{len(summary['seeds'])} seed{'s' if len(summary['seeds']) != 1 else ''} | "
            f"{_test_counts(summary)} | " + " | ".join(cells) + " |"
        )
    comparisons = {
        task: paired_differences(results, task, _headline(task)[0], draws=draws) for task in tasks
    }
    entries = [e for c in comparisons.values() for e in c.values()]
    with_interval = sum(e["low"] is not None for e in entries)
    lines += ["", comparison_note(len(entries), with_interval), ""]
    lines += [
        "| task | arm | seeds | difference | interval or sign agreement | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for task in tasks:
        key, label = _headline(task)
        for name, entry in comparisons[task].items():
            digits = _digits(key)
            spread = (
                f"{entry['positive']} of {entry['n']} seeds above zero (sign agreement)"
                if entry["low"] is None
                else f"[{entry['low']:+.{digits}f}, {entry['high']:+.{digits}f}]"
            )
            lines.append(
                f"| {task} | {name} | {entry['n']} | {entry['mean']:+.{digits}f} {label} | "
                f"{spread} | {verdict(entry)} |"
            )
    for task in tasks:
        key, label = _headline(task)
        rows = sorted(
            (r for r in results if r["task"] == task),
            key=lambda r: (r["seed"], order.index(r["variant"])),
        )
        lines += [
            "",
            f"#### {task}: {label} per seed",
            "",
            f"| seed | variant | {label} | baseline | train / validation / test samples | "
            "sensors | command |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            value = row["metrics"].get(key)
            base = row["baseline"]["metrics"].get(key)
            lines.append(
                f"| {row['seed']} | {row['variant']} | {_fmt(value)} | {_fmt(base)} | "
                f"{row['n_train']} / {row['n_val']} / {row['n_test']} | "
                f"{', '.join(row['sensors'])} | `{row['command']}` |"
            )
    return "\n".join(lines)


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4f}"
