"""The pretraining step against this machine's fp32 GEMM peak, and the data pipeline's share of it.

A step is what ``msgfm pretrain`` runs for the shipped recipe (``lite``, the ``samples`` manifest,
16 crops, the shipped encoder's band statistics, radiometric jitter 0.2): forward, backward,
gradient clipping and AdamW. Its FLOPs are counted by ``torch.utils.flop_counter`` on each timed
batch (forward and backward; the optimiser's element-wise work is not counted). The GEMM peak is
a square fp32 ``torch.mm`` of about the same FLOPs, timed in the same process between the steps
(step, matmul, step, matmul...), so both see the same load; each step's share of the peak is taken
against its neighbouring matmul.

Variants (``--variants``) are the levers of issue 23, each in a fresh process, in rotating order
over ``--rounds`` rounds:

* ``baseline``: the step as it was (AdamW one tensor at a time, torch's default threads, crops
  decoded by each process);
* ``fused``: fused AdamW (what the trainer now uses);
* ``cache``: fused AdamW and crops from the memory-mapped crop cache;
* ``threads1``: ``cache`` with one intra-op thread;
* ``workers1``: ``cache`` with one DataLoader worker process feeding the loop;
* ``threads1_workers1``: ``threads1`` with one DataLoader worker (the compute on one core, the
  data on the other);
* ``small``: ``cache`` with the ``small`` config (twice as wide);
* ``batch32``: ``cache`` with 32 crops a step.

Each process also times the data pipeline: drawing and collating a batch (``data_s``), and an
end-to-end loop through the trainer's DataLoader (``--workers``) where ``wait_s`` is the time the
step waited for its batch. Decoding every scene once per process (what a process without the cache
pays over its first steps) and opening the cache are timed too.

Run from the repository root (sample data fetched)::

    .venv/bin/python benchmarks/pretrain/bench_step.py --rounds 3 --steps 8 \\
        --out benchmarks/pretrain/results/step.json
    .venv/bin/python benchmarks/pretrain/report_step.py benchmarks/pretrain/results/step.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ENCODER_META = ROOT / "resources" / "models" / "msgfm_lite_encoder" / "meta.json"

VARIANTS: Dict[str, Dict[str, Any]] = {
    "baseline": {"config": "lite", "batch": 16, "optimizer": "single", "cache": False},
    "fused": {"config": "lite", "batch": 16, "optimizer": "fused", "cache": False},
    "cache": {"config": "lite", "batch": 16, "optimizer": "fused", "cache": True},
    "threads1": {"config": "lite", "batch": 16, "optimizer": "fused", "cache": True, "threads": 1},
    "threads1_workers1": {
        "config": "lite",
        "batch": 16,
        "optimizer": "fused",
        "cache": True,
        "threads": 1,
        "workers": 1,
    },
    "small": {"config": "small", "batch": 16, "optimizer": "fused", "cache": True},
    "workers1": {"config": "lite", "batch": 16, "optimizer": "fused", "cache": True, "workers": 1},
    "batch32": {"config": "lite", "batch": 32, "optimizer": "fused", "cache": True},
}


def shipped_stats() -> Dict[str, Any]:
    """The band statistics the shipped encoder was pretrained with (its ``meta.json``)."""
    return json.loads(ENCODER_META.read_text())["normalization"]


def load_average() -> float:
    """1-minute load average (2 = both cores of this machine busy)."""
    return os.getloadavg()[0]


# --- one variant, in its own process ---------------------------------------------------------


def build_dataset(variant: Dict[str, Any], cache_dir: Optional[str], seed: int = 0):
    """The shipped recipe's dataset; returns ``(dataset, decode_s, open_s)``."""
    from backend.data.crop_cache import CropCache
    from backend.data.manifest import load_manifest
    from backend.data.pretrain_dataset import BandNormalizer, PretrainCropDataset

    stats = shipped_stats()["sensors"]
    manifest = load_manifest("samples")
    normalizer = BandNormalizer(stats)
    cache = decode_s = open_s = None
    if variant["cache"]:
        started = time.perf_counter()
        cache = CropCache.open_or_build(manifest, stats, normalizer, Path(cache_dir))
        open_s = time.perf_counter() - started
    else:
        # What a process without the cache pays over its first steps: every scene decoded.
        started = time.perf_counter()
        for source in manifest.sources:
            for scene in source.scenes:
                size = scene.reference_grid()
                for sensor in scene.sensors:
                    scene.read(sensor, 0, 0, min(96, size.height), min(96, size.width))
        decode_s = time.perf_counter() - started
    dataset = PretrainCropDataset(
        manifest, 96, seed=seed, normalizer=normalizer, jitter=0.2, cache=cache
    )
    return dataset, decode_s, open_s


def make_optimizer(model, kind: str):
    """AdamW as the trainer builds it (``fused``) or torch's one-tensor-at-a-time default."""
    import torch

    from backend.train.trainer import Trainer, TrainerConfig

    optimizer = Trainer(TrainerConfig(lr=1e-3)).configure_optimizer(model)
    if kind == "fused":
        return optimizer
    groups = [
        {"params": g["params"], "weight_decay": g["weight_decay"]} for g in optimizer.param_groups
    ]
    return torch.optim.AdamW(groups, lr=1e-3, foreach=False)


def run_variant(name: str, steps: int, workers: int, cache_dir: Optional[str]) -> Dict[str, Any]:
    """Time one variant in this process (see the module docstring)."""
    variant = VARIANTS[name]
    workers = int(variant.get("workers", workers))
    import torch

    if variant.get("threads"):
        torch.set_num_threads(int(variant["threads"]))
    from torch.utils.data import DataLoader
    from torch.utils.flop_counter import FlopCounterMode

    from backend.data.pretrain_dataset import StepBatchSampler, group_by_sensor
    from backend.models.config import get_config
    from backend.models.cross_sensor_mim import MsGFMPretrainModel, SubBatch

    load_before = load_average()
    dataset, decode_s, open_s = build_dataset(variant, cache_dir)
    batch = int(variant["batch"])
    data_s: List[float] = []
    batches = []
    for k in range(steps + 2):
        started = time.perf_counter()
        batches.append(group_by_sensor([dataset[i] for i in range(k * batch, (k + 1) * batch)]))
        data_s.append(time.perf_counter() - started)

    torch.manual_seed(0)
    config = get_config(variant["config"])
    model = MsGFMPretrainModel(config)
    model.train()
    optimizer = make_optimizer(model, variant["optimizer"])

    def forward(sub_batches):
        return model([SubBatch(**s) for s in sub_batches]).loss

    flops = []
    for sub_batches in batches[2:]:
        with FlopCounterMode(display=False) as counter:
            forward(sub_batches).backward()
        flops.append(counter.get_total_flops())
        model.zero_grad(set_to_none=True)
    n = max(256, round((statistics.median(flops) / 2) ** (1 / 3) / 64) * 64)
    a, b = torch.randn(n, n), torch.randn(n, n)

    def step(sub_batches) -> Dict[str, float]:
        optimizer.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss = forward(sub_batches)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        t3 = time.perf_counter()
        return {"forward_s": t1 - t0, "backward_s": t2 - t1, "optimizer_s": t3 - t2}

    for sub_batches in batches[:2]:  # warm-up: first-use allocations, caches
        step(sub_batches)
        torch.mm(a, b)
    records = []
    for sub_batches, step_flops in zip(batches[2:], flops):
        timing = step(sub_batches)
        started = time.perf_counter()
        torch.mm(a, b)
        matmul_s = time.perf_counter() - started
        step_s = sum(timing.values())
        records.append(
            {
                **timing,
                "step_s": step_s,
                "flops": step_flops,
                "matmul_s": matmul_s,
                "fraction_of_peak": (step_flops / step_s) / (2 * n**3 / matmul_s),
            }
        )

    # End to end as the trainer runs: the DataLoader feeds the step.
    loader = DataLoader(
        dataset,
        batch_sampler=StepBatchSampler(1000, 1000 + steps + 1, batch),
        collate_fn=group_by_sensor,
        num_workers=workers,
    )
    wait_s, loop_s = [], []
    iterator = iter(loader)
    started = time.perf_counter()
    for index in range(steps + 1):
        t0 = time.perf_counter()
        sub_batches = next(iterator)
        t1 = time.perf_counter()
        step(sub_batches)
        t2 = time.perf_counter()
        if index:  # the first batch includes starting the workers
            wait_s.append(t1 - t0)
            loop_s.append(t2 - t0)
    del iterator
    return {
        "variant": name,
        **variant,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "matmul_n": n,
        "decode_all_scenes_s": decode_s,
        "open_cache_s": open_s,
        "data_s": data_s[2:],
        "steps": records,
        "loader_workers": workers,
        "loop_wait_s": wait_s,
        "loop_step_s": loop_s,
        "load_before": load_before,
        "load_after": load_average(),
    }


# --- the driver -------------------------------------------------------------------------------


def machine() -> Dict[str, Any]:
    """Processor, cores, library versions."""
    import numpy
    import torch

    name = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "processor": name,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
    }


def summarize(records: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Per variant: min and median over every timed step of every round, of the step, its parts,
    its share of the peak, the data time per batch and the end-to-end loop."""
    out: Dict[str, Dict[str, Any]] = {}
    for name in dict.fromkeys(r["variant"] for r in records):
        runs = [r for r in records if r["variant"] == name]
        steps = [s for r in runs for s in r["steps"]]

        def both(values: List[float]) -> List[float]:
            return [min(values), statistics.median(values)] if values else []

        step_s = [s["step_s"] for s in steps]
        data = [d for r in runs for d in r["data_s"]]
        loop = [x for r in runs for x in r["loop_step_s"]]
        wait = [x for r in runs for x in r["loop_wait_s"]]
        batch = runs[0]["batch"]
        out[name] = {
            "config": runs[0]["config"],
            "batch": batch,
            "threads": runs[0]["threads"],
            "gflop_per_step": statistics.median(s["flops"] for s in steps) / 1e9,
            "matmul_n": runs[0]["matmul_n"],
            "step_s": both(step_s),
            "forward_s": both([s["forward_s"] for s in steps]),
            "backward_s": both([s["backward_s"] for s in steps]),
            "optimizer_s": both([s["optimizer_s"] for s in steps]),
            # The best share is the step's best against the same process's best matmul.
            "fraction_of_peak": [
                max(s["fraction_of_peak"] for s in steps),
                statistics.median(s["fraction_of_peak"] for s in steps),
            ],
            "peak_gflops": max(
                2 * r["matmul_n"] ** 3 / s["matmul_s"] for r in runs for s in r["steps"]
            )
            / 1e9,
            "data_s": both(data),
            "data_share_inline": [
                min(d / (d + s) for d, s in zip(data, step_s)),
                statistics.median(d / (d + s) for d, s in zip(data, step_s)),
            ],
            "loop_step_s": both(loop),
            "loop_wait_share": [
                min(w / x for w, x in zip(wait, loop)),
                statistics.median(w / x for w, x in zip(wait, loop)),
            ],
            "crops_per_s": [batch / min(loop), batch / statistics.median(loop)] if loop else [],
            "decode_all_scenes_s": both(
                [r["decode_all_scenes_s"] for r in runs if r["decode_all_scenes_s"] is not None]
            ),
            "open_cache_s": both(
                [r["open_cache_s"] for r in runs if r["open_cache_s"] is not None]
            ),
            "rounds": len(runs),
        }
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=[v for v in VARIANTS if v not in ("batch32", "threads1_workers1")],
        choices=list(VARIANTS),
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per variant and round")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the loop")
    parser.add_argument("--cache-dir", default=None, help="crop cache folder (default: auto)")
    parser.add_argument("--out", default=str(HERE / "results" / "step.json"))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.worker:
        print(json.dumps(run_variant(args.worker, args.steps, args.workers, args.cache_dir)))
        return 0

    from backend.data.crop_cache import CropCache, resolve_cache_dir
    from backend.data.manifest import load_manifest
    from backend.data.pretrain_dataset import BandNormalizer

    cache_dir = str(resolve_cache_dir(args.cache_dir or "auto"))
    stats = shipped_stats()["sensors"]
    started = time.perf_counter()
    cache = CropCache.open_or_build(
        load_manifest("samples"), stats, BandNormalizer(stats), Path(cache_dir)
    )
    build_s = time.perf_counter() - started
    began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    records = []
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for round_index in range(args.rounds):
        order = (
            args.variants[round_index % len(args.variants) :]
            + args.variants[: round_index % len(args.variants)]
        )
        for name in order:
            command = [
                sys.executable, __file__, "--worker", name, "--steps", str(args.steps),
                "--workers", str(args.workers), "--cache-dir", cache_dir,
            ]  # fmt: skip
            result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            if result.returncode:
                print(result.stderr, file=sys.stderr)
                return result.returncode
            record = json.loads(result.stdout.strip().splitlines()[-1])
            record["round"] = round_index
            records.append(record)
            print(
                f"round {round_index} {name}: step {min(s['step_s'] for s in record['steps']):.3f} s, "
                f"{max(s['fraction_of_peak'] for s in record['steps']):.1%} of peak, "
                f"load {record['load_before']:.1f}",
                file=sys.stderr,
                flush=True,
            )
    document = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": began,
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "machine": machine(),
        "cache": {"key": cache.key, "first_open_or_build_s": build_s},
        "rounds": args.rounds,
        "steps": args.steps,
        "workers": args.workers,
        "summary": summarize(records),
        "records": records,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps(document["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
