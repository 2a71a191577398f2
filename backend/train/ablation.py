"""The paper's ablations at sample-data scale: ``msgfm ablate run`` and ``msgfm ablate report``.

Each *variant* changes one thing of the bundled-model recipe (:mod:`backend.train.defaults`) and
keeps everything else (budget, seeds, finetuning, data splits):

* ``msgfm``: the recipe itself: every sample sensor, MoE, cross-sensor reconstruction;
* ``random-init``: no pretraining, every task finetuned from random weights;
* ``single-sensor``: pretraining on the Sentinel-2 sources only (``samples_s2``), same steps;
* ``no-moe``: every MoE block replaced by a dense MLP (``use_moe: false``);
* ``no-cross-sensor``: paired crops reconstruct their own sensor only (``p_cross: 0``).

For each seed and variant the study pretrains (unless random), finetunes each task and scores the
finetuned checkpoint on its held-back tiles with :func:`backend.train.evaluate.evaluate_model`,
the function behind ``msgfm evaluate``; every result records the ``msgfm evaluate`` command that
reproduces it. A seed fixes initialisation, data order, masking *and* the held-back split, so
seeds differ in which tiles are scored while variants of one seed are scored on the same tiles.

Results go to ``WORK/results.json`` after every finetuning run (atomically), and a run picks up
where an interrupted one stopped. ``report`` turns the results into the Markdown tables of
``docs/evaluation.md``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

RESULTS_FILE = "results.json"


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

# The score each task is ranked by in the report (all are in every result).
HEADLINE = {
    "classification": ("overall_accuracy", "OA", True),
    "segmentation": ("mean_iou", "mIoU", True),
    "cloud-removal": ("psnr", "PSNR (dB)", True),
    "pansharpening": ("psnr", "PSNR (dB)", True),
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
        seeds: Seeds to run.
        variants: Variant names (default: all).
        tasks: Task names (default: the four of the recipe).
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
        from .defaults import BUDGETS, DEFAULT_CONFIG, TASK_RECIPES

        unknown = [v for v in (variants or []) if v not in VARIANTS]
        if unknown:
            raise ValueError(f"--variant {unknown}: choose among {', '.join(VARIANTS)}")
        known_tasks = [r.task for r in TASK_RECIPES]
        unknown = [t for t in (tasks or []) if t not in known_tasks]
        if unknown:
            raise ValueError(f"--task {unknown}: choose among {', '.join(known_tasks)}")
        if budget not in BUDGETS:
            raise ValueError(f"--budget must be one of {', '.join(BUDGETS)}, not {budget!r}")
        if not seeds:
            raise ValueError("give at least one --seed")
        self.work_dir = Path(work_dir)
        self.budget = budget
        self.seeds = [int(s) for s in seeds]
        self.variants = [VARIANTS[v] for v in (variants or list(VARIANTS))]
        self.recipes = [r for r in TASK_RECIPES if not tasks or r.task in tasks]
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
        return list(json.loads(self.results_path.read_text(encoding="utf-8"))["results"])

    def _save(self, results: List[Dict[str, Any]]) -> None:
        document = {"budget": self.budget, "config": self.config, "results": results}
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
                todo = [r for r in self.recipes if (seed, variant.name, r.task) not in done]
                if not todo:
                    continue
                recipe = self._recipe(variant, seed)
                init = self._pretrained(recipe, variant)
                for task_recipe in todo:
                    results.append(self._finetune_and_score(recipe, task_recipe, variant, init))
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
            if step == recipe.budget.pretrain_steps:
                self.say(f"{variant.name} seed {recipe.seed}: reusing {run}")
                return run
        self.say(f"{variant.name} seed {recipe.seed}: pretraining")
        return recipe.pretrain()

    def _finetune_and_score(self, recipe, task_recipe, variant: Variant, init) -> Dict[str, Any]:
        from .evaluate import evaluate_model
        from .metrics import json_safe

        started = time.perf_counter()
        trainer, checkpoint = recipe.finetune(task_recipe, init)
        run_dir = checkpoint.parent
        report = evaluate_model(str(run_dir), device="cpu")
        seconds = round(time.perf_counter() - started, 1)
        self.say(
            f"{variant.name} seed {recipe.seed} {task_recipe.task}: "
            + ", ".join(f"{k} {v:.4g}" for k, v in _headline(report).items())
            + f" ({seconds:.0f} s)"
        )
        return {
            "variant": variant.name,
            "seed": recipe.seed,
            "task": task_recipe.task,
            "data": task_recipe.data,
            "checkpoint": str(checkpoint),
            "command": f"msgfm evaluate --model {run_dir} --json",
            "n_train": len(trainer.train_samples),
            "n_val": report["n_samples"],
            "metrics": json_safe(report["metrics"]),
            "baseline": json_safe(report["baseline"]),
            "pretrain": getattr(recipe, "pretrain_result", None),
            "seconds": seconds,
        }


def _headline(report: Mapping[str, Any]) -> Dict[str, float]:
    key, label, _ = HEADLINE[report["task"]]
    return {
        label: report["metrics"][key],
        f"baseline {label}": report["baseline"]["metrics"][key],
    }


# --- report -------------------------------------------------------------------------------------


def summarize(results: Sequence[Mapping[str, Any]], task: str, key: str) -> Dict[str, Any]:
    """Mean, standard deviation and per-seed values of one metric per variant (and baseline).

    Returns:
        ``{"variants": {name: {"mean", "std", "values": {seed: value}}}, "baseline": {...},
        "seeds": [...]}``; ``std`` is the sample standard deviation (None for one seed).
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
    for row in rows:
        variants.setdefault(row["variant"], {})[row["seed"]] = row["metrics"].get(key)
        baseline[row["seed"]] = row["baseline"]["metrics"].get(key)
    return {
        "variants": {name: stats(values) for name, values in variants.items()},
        "baseline": stats(baseline),
        "seeds": seeds,
    }


def _cell(entry: Mapping[str, Any], digits: int) -> str:
    if entry["mean"] is None:
        return "n/a"
    if entry["std"] is None:
        return f"{entry['mean']:.{digits}f}"
    return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}"


def markdown_tables(results: Sequence[Mapping[str, Any]]) -> str:
    """The summary table (mean ± sd over seeds) and one per-seed table per task, in Markdown."""
    tasks = [t for t in HEADLINE if any(r["task"] == t for r in results)]
    order = [v for v in VARIANTS if any(r["variant"] == v for r in results)]
    summaries = {t: summarize(results, t, HEADLINE[t][0]) for t in tasks}
    header = []
    for task in tasks:
        count = len(summaries[task]["seeds"])
        header.append(f"{task}: {HEADLINE[task][1]}, {count} seed{'s' if count > 1 else ''}")
    lines = ["| variant | " + " | ".join(header) + " |"]
    lines.append("|---" * (len(tasks) + 1) + "|")
    for name in order:
        cells = []
        for task in tasks:
            entry = summaries[task]["variants"].get(name)
            digits = 3 if HEADLINE[task][0] != "psnr" else 2
            cells.append(_cell(entry, digits) if entry else "not run")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    baseline_cells = []
    for task in tasks:
        digits = 3 if HEADLINE[task][0] != "psnr" else 2
        baseline_cells.append(_cell(summaries[task]["baseline"], digits))
    lines.append("| *trivial baseline* | " + " | ".join(baseline_cells) + " |")
    for task in tasks:
        key, label, _ = HEADLINE[task]
        rows = sorted(
            (r for r in results if r["task"] == task),
            key=lambda r: (r["seed"], order.index(r["variant"])),
        )
        lines += [
            "",
            f"#### {task}: {label} per seed",
            "",
            f"| seed | variant | {label} | baseline | train / held-back samples | command |",
            "|---|---|---|---|---|---|",
        ]
        for row in rows:
            value = row["metrics"].get(key)
            base = row["baseline"]["metrics"].get(key)
            lines.append(
                f"| {row['seed']} | {row['variant']} | {_fmt(value)} | {_fmt(base)} | "
                f"{row['n_train']} / {row['n_val']} | `{row['command']}` |"
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
    run.add_argument("--task", action="append", default=None, help="repeat (default: all four)")
    run.add_argument("--config", default=None, help="base model config (default: lite)")
    run.add_argument("--data-root", default=None)
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    run.set_defaults(func=_run)
    report = commands.add_parser("report", help="Markdown tables of a results.json")
    report.add_argument("--results", default="runs/ablation/results.json")
    report.set_defaults(func=_report)


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
    print(markdown_tables(json.loads(path.read_text(encoding="utf-8"))["results"]))
    return 0


def paired_differences(
    results: Sequence[Mapping[str, Any]], task: str, key: str, reference: str = "msgfm"
) -> Dict[str, Dict[str, Any]]:
    """Per variant, ``reference`` minus that variant on the same seed (same held-back tiles).

    Returns:
        ``{variant: {"mean", "std", "n", "reference_better"}}`` over the seeds both have;
        ``std`` is the sample standard deviation (None for one seed), ``reference_better`` counts
        the seeds where the reference scored higher.
    """
    import numpy as np

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
        diff = np.asarray([mine[s] - scores[s] for s in seeds])
        out[variant] = {
            "mean": float(diff.mean()),
            "std": float(diff.std(ddof=1)) if diff.size > 1 else None,
            "n": int(diff.size),
            "reference_better": int((diff > 0).sum()),
        }
    return out
