"""The long pretraining runs of docs/pretraining.md: each recipe on several seeds, resumable.

Each run is ``msgfm pretrain`` on the ``lite`` encoder and the samples corpus with the shipped
recipe's statistics and jitter, for ``--steps`` optimiser steps, probing every ``--probe-every``
steps on the validation half of the BigEarthNet probe (linear and k-NN mAP, effective rank) and
scoring the held-out reconstruction check on the same patches (masked L1 against the
visible-mean predictor). Runs go one after another; a run that was stopped (Ctrl+C, a reboot)
continues from its last checkpoint when the command is given again, and a finished run is skipped.

    nohup .venv/bin/python scripts/pretrain_long.py --out runs/long > runs/long.log 2>&1 &
    .venv/bin/python scripts/pretrain_long.py --out runs/long --status
    .venv/bin/python scripts/pretrain_long.py --out runs/long --evaluate   # kept checkpoints
    .venv/bin/python scripts/pretrain_long.py --out runs/long --final      # once, at the end

``--evaluate`` scores every kept checkpoint (one every ``--keep-every`` steps) on the validation
half of the probe and the held-out check, each patch set normalised with its own product level's
statistics; ``--final`` selects on those figures alone and scores the selected checkpoints once on
the final half (:mod:`backend.train.long_runs`).

Recipes (the two the issue asks for; both on top of ``lite``):

- ``align``: masked modelling plus the cross-view alignment of the recipe search (variant G);
- ``align-vicreg``: the same plus VICReg's variance and covariance terms on the pooled
  multi-stage embedding, against the collapse of its effective rank.

One thread and the crop cache suit a 2-core machine shared with other work
(``benchmarks/pretrain``, docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Changes to the lite config per recipe (backend/models/config.py documents each field).
RECIPES: Dict[str, Dict[str, float]] = {
    "align": {"align_weight": 1.0},
    "align-vicreg": {"align_weight": 1.0, "variance_weight": 1.0, "covariance_weight": 0.04},
}


def write_config(recipe: str, folder: Path) -> Path:
    """The recipe's model config as a JSON file ``msgfm pretrain --config`` reads."""
    from backend.models.config import ModelConfig, get_config

    config = ModelConfig(
        **{**get_config("lite").to_dict(), **RECIPES[recipe], "name": f"lite-{recipe}"}
    )
    config.validate()
    path = folder / f"lite-{recipe}.json"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config.to_dict(), indent=1) + "\n", encoding="utf-8")
    return path


def run_args(recipe: str, seed: int, args: argparse.Namespace) -> List[str]:
    from backend.train.defaults import PRETRAIN_JITTER, PRETRAIN_REGISTRY_STATS

    out = Path(args.out)
    run = out / f"{recipe}-seed{seed}"
    flags = [
        "pretrain",
        "--config", str(write_config(recipe, out / "configs")),
        "--manifest", "samples",
        "--out", str(run),
        "--max-steps", str(args.steps),
        "--batch-size", "16",
        "--warmup-steps", str(max(1, args.steps // 20)),
        "--seed", str(seed),
        "--probe-every", str(args.probe_every),
        "--checkpoint-every", str(args.checkpoint_every),
        "--keep-every", str(args.keep_every),
        "--registry-stats", ",".join(PRETRAIN_REGISTRY_STATS),
        "--jitter", str(PRETRAIN_JITTER),
        "--threads", str(args.threads),
        "--crop-cache", "auto",
        "--no-progress",
    ]  # fmt: skip
    if (run / "checkpoint-last").exists():
        flags.append("--resume")
    return flags


def finished(run: Path, steps: int) -> bool:
    summary = run / "summary.json"
    if not summary.is_file():
        return False
    return int(json.loads(summary.read_text()).get("step", 0)) >= steps


def status(out: Path) -> None:
    """The last logged figures of every run under ``out``."""
    for run in sorted(p for p in out.iterdir() if (p / "metrics.jsonl").is_file()):
        last: Dict[str, float] = {}
        for line in (run / "metrics.jsonl").read_text().splitlines():
            record = json.loads(line)
            last.update({k: v for k, v in record.items() if not isinstance(v, (dict, list))})
        keys = [k for k in last if k.startswith(("heldout_", "probe_")) or k in ("step", "l1")]
        print(run.name, " ".join(f"{k}={last[k]:.4g}" for k in keys if last[k] is not None))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/long", help="folder of the runs")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--probe-every", type=int, default=1000)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--keep-every", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--status", action="store_true", help="print where the runs are, run none")
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="score every kept checkpoint not yet scored (validation probe, held-out check)",
    )
    parser.add_argument(
        "--final",
        action="store_true",
        help="select each run's checkpoint on the validation probe, score it once on the final "
        "probe and bootstrap each recipe's margin over random init",
    )
    parser.add_argument("--results", default=None, help="evaluation file (OUT/evaluation.json)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.status:
        status(out)
        return 0
    if args.evaluate or args.final:
        from backend.data.fetch import sample_data_root
        from backend.train import long_runs

        results = Path(args.results) if args.results else out / "evaluation.json"
        if args.evaluate:
            long_runs.evaluate_runs(out, results, sample_data_root())
        if args.final:
            try:
                long_runs.score_final(out, results, sample_data_root(), required_steps=args.steps)
            except ValueError as exc:
                print(f"pretrain_long: {exc}", file=sys.stderr)
                return 2
        print(results)
        return 0
    from backend.cli import main as msgfm

    for seed in args.seeds:  # every recipe on seed 0 first: a comparison is ready soonest
        for recipe in args.recipes:
            run = out / f"{recipe}-seed{seed}"
            if finished(run, args.steps):
                print(f"{run.name}: finished", flush=True)
                continue
            print(f"{run.name}: running to step {args.steps}", flush=True)
            code = msgfm(run_args(recipe, seed, args))
            if code != 0:
                print(f"{run.name}: msgfm pretrain exited {code}", file=sys.stderr)
                return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
