"""The ablation report: summaries over seeds, paired differences with bootstrap intervals, and
the Markdown tables of ``docs/evaluation.md`` (``msgfm ablate report``).

A finding says "helps" or "hurts" only where the 95 % interval of msGFM minus the arm excludes
zero; otherwise "no detectable effect".
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from .ablation import EVAL_TASKS, UNSEEN, VARIANTS

BOOTSTRAP_SAMPLES = 10000


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


def bootstrap_interval(
    values: Sequence[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple:
    """Percentile bootstrap 95 % interval of the mean of ``values`` (resampled with replacement).

    With n values there are only C(2n-1, n) distinct resamples (10 for n = 3), so for a few seeds
    the interval is close to the range of the values: it excludes zero only when every value
    lies on one side of it.
    """
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    if array.size < 2:
        return (None, None)
    rng = np.random.default_rng(seed)
    means = array[rng.integers(0, array.size, size=(samples, array.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (float(low), float(high))


def paired_differences(
    results: Sequence[Mapping[str, Any]], task: str, key: str, reference: str = "msgfm"
) -> Dict[str, Dict[str, Any]]:
    """Per variant, ``reference`` minus that variant on the same seed (same test tiles).

    Returns:
        ``{variant: {"mean", "low", "high", "n", "values": {seed: difference}}}`` over the seeds
        both have; ``low``/``high`` is the bootstrap 95 % interval (None below two seeds).
    """
    values: Dict[str, Dict[int, float]] = {}
    for row in results:
        if row["task"] == task and row["metrics"].get(key) is not None:
            values.setdefault(row["variant"], {})[row["seed"]] = float(row["metrics"][key])
    mine = values.get(reference, {})
    out = {}
    for variant, scores in values.items():
        if variant == reference:
            continue
        seeds = sorted(set(scores) & set(mine))
        if not seeds:
            continue
        differences = {s: mine[s] - scores[s] for s in seeds}
        low, high = bootstrap_interval(list(differences.values()))
        out[variant] = {
            "mean": sum(differences.values()) / len(differences),
            "low": low,
            "high": high,
            "n": len(seeds),
            "values": differences,
        }
    return out


def verdict(entry: Mapping[str, Any]) -> str:
    """What the part that an arm removes does, from msGFM minus the arm (higher is better).

    "helps" or "hurts" only when the 95 % interval excludes zero, else "no detectable effect".
    """
    if entry["low"] is None:
        return "no detectable effect (one seed: no interval)"
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


def markdown_tables(results: Sequence[Mapping[str, Any]]) -> str:
    """The summary (mean ± sd over seeds), the paired differences with intervals, and one
    per-seed table per task, in Markdown."""
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
    lines += [
        "",
        "Paired by seed, msGFM minus each arm: mean difference [bootstrap 95 % interval over "
        "seeds], and what the part the arm removes does:",
        "",
        "| task | arm | seeds | difference | verdict |",
        "|---|---|---|---|---|",
    ]
    for task in tasks:
        key, label = _headline(task)
        for name, entry in paired_differences(results, task, key).items():
            digits = _digits(key)
            interval = (
                "no interval"
                if entry["low"] is None
                else f"[{entry['low']:+.{digits}f}, {entry['high']:+.{digits}f}]"
            )
            lines.append(
                f"| {task} | {name} | {entry['n']} | {entry['mean']:+.{digits}f} {label} "
                f"{interval} | {verdict(entry)} |"
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
