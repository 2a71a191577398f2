"""Pretraining step time and peak memory of msGFM ``small`` with MoE against the same model dense.

A step is what ``msgfm pretrain`` runs: forward on three per-sensor sub-batches (S2 paired with
SAR, RGB, DSM) of ``B`` images each, the masked L1 + 0.01 x aux loss, backward and an AdamW update.
Images are real sample crops (BigEarthNet S2/S1 pairs, SpaceNet-6 RGB, LiDAR DEM), normalised with
the sensor registry and resized bilinearly to the image size. Each measurement runs in a fresh
subprocess so that its peak RSS (CPU) or peak allocated memory (CUDA) is its own.

Run from the repository root:

    .venv/bin/python benchmarks/pretrain/bench_moe.py [--threads 2] [--device cpu]

It writes ``benchmarks/pretrain/results.json`` and ``results.md`` (or ``--out DIR``) and prints the
table. Sweeps: MoE vs dense at batch 8 and the config's image size; step time vs batch size
(4, 8, 16) and vs image size (64, 96, 128) for both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def real_images(size: int, batch: int):
    """Normalised real crops per sensor, ``batch`` each, resized to ``size``."""
    import json as json_module

    import numpy as np
    import rasterio
    import torch
    import torch.nn.functional as F
    from rasterio.enums import Resampling

    sys.path.insert(0, str(ROOT))
    from backend.data.fetch import ensure_sample_data
    from backend.sensors import normalize, select_bands

    samples = ensure_sample_data()

    def band_files(folder: Path, sensor: str) -> np.ndarray:
        files = sorted(folder.glob("*.tif"))
        bands = []
        for i in select_bands(sensor, [f.name for f in files]):
            with rasterio.open(files[i]) as dataset:
                bands.append(dataset.read(1, out_shape=(120, 120), resampling=Resampling.bilinear))
        return normalize(sensor, np.stack(bands).astype(np.float32))

    s2, sar = [], []
    for s1_folder in sorted((samples / "bigearthnet" / "S1").iterdir()):
        meta_file = next(s1_folder.glob("*_labels_metadata.json"))
        partner = json_module.loads(meta_file.read_text())["corresponding_s2_patch"]
        s2.append(band_files(samples / "bigearthnet" / "S2" / partner, "s2"))
        sar.append(band_files(s1_folder, "sar"))
    with rasterio.open(samples / "sar_rgb" / "rgb_unmasked.tif") as dataset:
        rgb = normalize("rgb", dataset.read().astype(np.float32))
    with rasterio.open(samples / "dem" / "dem.tif") as dataset:
        dem = dataset.read(1).astype(np.float32)[None]

    def crops(image: np.ndarray, count: int, side: int) -> np.ndarray:
        _, H, W = image.shape
        rows = np.linspace(0, H - side, count).astype(int)
        cols = np.linspace(0, W - side, count).astype(int)[::-1]
        return np.stack([image[:, r : r + side, c : c + side] for r, c in zip(rows, cols)])

    def fit(array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        tensor = tensor.repeat((batch + len(tensor) - 1) // len(tensor), 1, 1, 1)[:batch]
        return F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)

    return {
        "s2": fit(np.stack(s2)),
        "sar": fit(np.stack(sar)),
        "rgb": fit(crops(rgb, 8, 160)),
        "dsm": fit(normalize("dsm", crops(dem, 8, 160))),
    }


def training_step(config_name: str, use_moe: bool, sub_batches: list, device: Any = "cpu"):
    """``(step, model)``: one pretraining step (forward, loss, backward, AdamW) of a seeded model."""
    import torch

    sys.path.insert(0, str(ROOT))
    from backend.models.config import ModelConfig, get_config
    from backend.models.cross_sensor_mim import MsGFMPretrainModel

    config = get_config(config_name)
    config = ModelConfig(**{**config.to_dict(), "use_moe": use_moe})
    torch.manual_seed(0)
    model = MsGFMPretrainModel(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        output = model(sub_batches)
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()

    return step, model


def worker(spec: Dict[str, object]) -> Dict[str, object]:
    """Measure one case in its own process.

    ``mode == "time"``: build the MoE and the dense model and time their steps alternately, so
    both see the same machine load (other processes on a shared CPU shift absolute times, not the
    ratio). ``mode == "memory"``: run a few steps of one variant and report the process peak.
    """
    import resource
    import time

    import torch

    sys.path.insert(0, str(ROOT))
    from backend.models.cross_sensor_mim import SubBatch

    torch.set_num_threads(int(spec["threads"]))
    device = torch.device(str(spec["device"]))
    size, batch = int(spec["image_size"]), int(spec["batch"])
    images = {k: v.to(device) for k, v in real_images(size, batch).items()}
    sub_batches = [
        SubBatch("s2", images["s2"], "sar", images["sar"]),
        SubBatch("rgb", images["rgb"]),
        SubBatch("dsm", images["dsm"]),
    ]
    variants = [True, False] if spec["mode"] == "time" else [bool(spec["use_moe"])]
    steps = {}
    for use_moe in variants:
        step, model = training_step(str(spec["config"]), use_moe, sub_batches, device)
        steps[use_moe] = (step, sum(p.numel() for p in model.parameters()))

    for _ in range(int(spec["warmup"])):
        for step, _ in steps.values():
            step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times: Dict[bool, List[float]] = {v: [] for v in steps}
    for _ in range(int(spec["steps"])):
        for use_moe, (step, _) in steps.items():
            start = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[use_moe].append(time.perf_counter() - start)
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results = {}
    for use_moe, values in times.items():
        values.sort()
        results["moe" if use_moe else "dense"] = {
            "parameters": steps[use_moe][1],
            "step_s_median": values[len(values) // 2],
            "step_s_min": values[0],
        }
    return {**spec, "variants": results, "peak_memory_mib": peak_mib}


def run_case(spec: Dict[str, object]) -> Dict[str, object]:
    """Run :func:`worker` in a fresh interpreter and return its result."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]))
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark case {spec} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def markdown(results: List[Dict[str, object]], command: str, machine: str) -> str:
    """The results as a markdown report."""
    lines = [
        "# Pretraining benchmark: MoE vs dense",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine}. A step = 3 sub-batches (S2+SAR paired, RGB, DSM) of `batch` real",
        "sample images each: forward, masked L1 + 0.01 x aux, backward, AdamW. MoE and dense steps",
        "alternate in one process (same machine load); median of the timed steps after warm-up.",
        "Peak memory: a separate process per variant, peak RSS (CPU) or peak allocated (CUDA).",
        f"Load average when finished: {os.getloadavg()[0]:.1f} (other jobs share this machine).",
        "",
        "| sweep | image px | batch | model | params (M) | step ms | steps/s | MoE/dense | peak MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    dense = {
        (r["sweep"], r["image_size"], r["batch"]): r["step_s_median"]
        for r in results
        if not r["use_moe"]
    }
    for r in results:
        key = (r["sweep"], r["image_size"], r["batch"])
        ratio = f"{r['step_s_median'] / dense[key]:.2f}x" if r["use_moe"] and key in dense else ""
        lines.append(
            f"| {r['sweep']} | {r['image_size']} | {r['batch']} | "
            f"{'MoE' if r['use_moe'] else 'dense'} | {r['parameters'] / 1e6:.2f} | "
            f"{1000 * r['step_s_median']:.0f} | {r['steps_per_s']:.2f} | {ratio} | "
            f"{r['peak_memory_mib']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[64, 96, 128])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    sys.path.insert(0, str(ROOT))
    from backend.models.config import get_config

    default_size = get_config(args.config).image_size
    base = {
        "config": args.config,
        "device": args.device,
        "threads": args.threads,
        "steps": args.steps,
        "warmup": args.warmup,
    }
    cases = []
    for batch in args.batch_sizes:
        cases.append(("batch size", default_size, batch))
    for size in args.image_sizes:
        if size != default_size or args.batch not in args.batch_sizes:
            cases.append(("image size", size, args.batch))
    results = []
    for sweep, size, batch in cases:
        case = {**base, "sweep": sweep, "image_size": size, "batch": batch}
        timing = run_case({**case, "mode": "time"})
        for use_moe in (True, False):
            memory_steps = {"steps": 2, "warmup": 1}
            memory = run_case({**case, **memory_steps, "mode": "memory", "use_moe": use_moe})
            variant = timing["variants"]["moe" if use_moe else "dense"]
            result = {
                **case,
                **variant,
                "use_moe": use_moe,
                "images_per_step": 3 * batch,
                "steps_per_s": 1.0 / variant["step_s_median"],
                "peak_memory_mib": memory["peak_memory_mib"],
            }
            results.append(result)
            print(
                f"{sweep:>10} {size:>4}px batch {batch:>3} {'MoE  ' if use_moe else 'dense'} "
                f"{1000 * result['step_s_median']:8.1f} ms/step "
                f"{result['peak_memory_mib']:8.0f} MiB",
                flush=True,
            )
    command = "python benchmarks/pretrain/bench_moe.py " + " ".join(argv)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.device}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps({"command": command.strip(), "machine": machine, "results": results}, indent=2)
    )
    report = markdown(results, command.strip(), machine)
    (args.out / "results.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
