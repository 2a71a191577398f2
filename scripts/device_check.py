"""What a lent GPU does with msGFM, in one run of under 10 minutes, written to a report.

Parts (``--parts``, all by default), each timed and reported as ``ok``, ``skipped`` (with the
reason: no GPU, no CUDA provider, no sample data...) or ``failed`` (with the error); one part's
failure does not stop the others:

* ``onnx-parity``: every bundled model (``resources/models/*.onnx``) run by ONNX Runtime's CUDA
  provider and by its CPU provider on the same seeded inputs (standard normal, i.e. normalised
  units, batch 4): max absolute difference per output, relative to the output's range, and the
  share of pixels or windows whose arg-max class agrees.
* ``torch-throughput``: a pretraining step (forward, backward, AdamW) of ``lite``, ``small`` and
  ``base`` on CUDA in fp32 and in bf16 autocast: steps and crops per second, FLOPs per step
  (``torch.utils.flop_counter``), the share of a same-process matmul's rate in that precision,
  peak memory. Inputs are seeded normalised images of the shipped corpus's sensor mix (speed does
  not depend on pixel values, only on shapes and the MoE routing).
* ``ddp``: ``torchrun --standalone --nproc_per_node <GPUs>`` of ``msgfm pretrain`` for a few steps
  on CUDA, and an NCCL all-reduce in a process group of every GPU. With one GPU the trainer runs as
  one process (world size 1: DDP has nothing to synchronise; NCCL refuses two ranks on one GPU);
  the all-reduce still runs over NCCL.
* ``pretrain``: the shipped recipe (``lite``, ``samples``, 16 crops, the shipped encoder's
  statistics, jitter 0.2, crop cache) for as many steps as the remaining budget allows at the
  measured throughput; its checkpoint is left under ``OUT/pretrain/`` (the crop cache goes to
  the machine's cache folder, not into ``OUT``).

The pretraining parts read the sample data (``--data-root``, default the sample-data cache): a
machine without it reports them skipped.

Usage (repository root)::

    scripts/device_check.sh OUT [--budget-s 540] [--parts onnx-parity torch-throughput ...]

Writes ``OUT/device_check.json`` and ``OUT/device_check.md``. Exit status 0 when no part failed
(skipped parts included), 1 when one did, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "resources" / "models"
ENCODER_META = MODELS / "msgfm_lite_encoder" / "meta.json"
PARTS = ("onnx-parity", "torch-throughput", "ddp", "pretrain")
CONFIGS = ("lite", "small", "base")
PRECISIONS = ("fp32", "bf16")
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
# The sensors of a step and their share of the crops, as the samples manifest draws them
# (Sentinel-2 weighted 7 of 18.5; paired sources as their reference sensor).
SENSOR_MIX = (("s2", 0.4), ("rgb", 0.2), ("sar_vv", 0.15), ("landsat", 0.1), ("dem", 0.15))


class PartSkippedError(Exception):
    """A part that cannot run here; the message says why."""


# --- environment ------------------------------------------------------------------------------


def cuda_devices() -> List[str]:
    """Names of the CUDA GPUs torch sees (empty without torch, a CUDA build or a GPU)."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def require_gpu(allow_cpu: bool) -> str:
    """The torch device for a GPU part: ``cuda``, ``cpu`` when allowed, else :class:`PartSkippedError`."""
    try:
        import torch
    except ImportError as exc:
        raise PartSkippedError(f"torch is not importable ({exc})") from None
    if torch.cuda.is_available():
        return "cuda"
    if allow_cpu:
        return "cpu"
    raise PartSkippedError(
        f"no CUDA GPU: torch {torch.__version__} sees none "
        f"({'a CPU-only build' if torch.version.cuda is None else 'CUDA ' + torch.version.cuda})"
    )


def environment() -> Dict[str, Any]:
    """Machine, GPUs and library versions, for the report's header."""
    info: Dict[str, Any] = {
        "host": platform.node(),
        "python": platform.python_version(),
        "cpu_cores": os.cpu_count(),
        "gpus": cuda_devices(),
    }
    for module in ("torch", "onnxruntime", "numpy"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    try:
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        info["onnxruntime_providers"] = []
    return info


# --- ONNX Runtime parity ----------------------------------------------------------------------


def model_inputs(session, batch: int, seed: int = 0) -> Dict[str, Any]:
    """Seeded standard-normal inputs for every input of an ONNX session (symbolic axes: batch)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for item in session.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in item.shape]
        feeds[item.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def compare_outputs(reference: Sequence[Any], other: Sequence[Any], names: Sequence[str]):
    """Per output: max absolute difference, that relative to the reference's range, and (for
    outputs with a class or band axis) the share of positions whose arg-max over axis 1 agrees."""
    import numpy as np

    rows = []
    for name, a, b in zip(names, reference, other):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        scale = float(np.max(a) - np.min(a)) if a.size else 0.0
        row = {
            "output": name,
            "shape": list(a.shape),
            "max_abs_diff": diff,
            "max_rel_diff": diff / scale if scale > 0 else diff,
        }
        if a.ndim >= 2 and a.shape[1] > 1:
            row["argmax_agreement"] = float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))
        rows.append(row)
    return rows


def onnx_parity(
    models: Sequence[Path],
    provider: str = CUDA_PROVIDER,
    reference_provider: str = CPU_PROVIDER,
    batch: int = 4,
) -> Dict[str, Any]:
    """Every model under ``provider`` against ``reference_provider`` (see the module docstring).

    Raises:
        PartSkippedError: ONNX Runtime lacks ``provider`` (the CPU package, or CUDA libraries missing).
    """
    try:
        import onnxruntime
    except ImportError as exc:
        raise PartSkippedError(f"onnxruntime is not importable ({exc})") from None
    available = onnxruntime.get_available_providers()
    if provider not in available:
        raise PartSkippedError(
            f"ONNX Runtime {onnxruntime.__version__} has no {provider} (providers: "
            f"{', '.join(available)}); install onnxruntime-gpu instead of onnxruntime"
        )
    if not models:
        raise PartSkippedError(f"no bundled models in {MODELS} (make train-defaults builds them)")
    options = onnxruntime.SessionOptions()
    # Parity, not speed: one CPU thread keeps the check from crowding a shared machine.
    options.intra_op_num_threads = 1
    results = []
    for path in models:
        sessions = []
        for chosen in (reference_provider, provider):
            session = onnxruntime.InferenceSession(str(path), options, providers=[chosen])
            running = session.get_providers()[0]
            if running != chosen:
                raise RuntimeError(
                    f"{path.name}: ONNX Runtime fell back from {chosen} to {running}; check the "
                    "CUDA and cuDNN libraries"
                )
            sessions.append(session)
        feeds = model_inputs(sessions[0], batch)
        names = [o.name for o in sessions[0].get_outputs()]
        started = time.perf_counter()
        reference = sessions[0].run(None, feeds)
        reference_s = time.perf_counter() - started
        sessions[1].run(None, feeds)  # the first run of a GPU session sets up its kernels
        started = time.perf_counter()
        other = sessions[1].run(None, feeds)
        other_s = time.perf_counter() - started
        results.append(
            {
                "model": path.name,
                "outputs": compare_outputs(reference, other, names),
                f"{reference_provider}_s": reference_s,
                f"{provider}_s": other_s,
            }
        )
    return {
        "provider": provider,
        "reference": reference_provider,
        "batch": batch,
        "models": results,
    }


# --- torch throughput -------------------------------------------------------------------------


def synthetic_step_batch(config, batch: int, device: str, seed: int = 0) -> List[Any]:
    """Sub-batches of seeded normalised images of :data:`SENSOR_MIX`, ``batch`` crops in all."""
    import torch

    from backend.models.cross_sensor_mim import SubBatch
    from backend.sensors import get_sensor

    generator = torch.Generator().manual_seed(seed)
    mix = [(s, share) for s, share in SENSOR_MIX if s in config.sensors] or [(config.sensors[0], 1)]
    counts = [max(1, round(batch * share)) for _, share in mix]
    counts[0] += batch - sum(counts)
    size = config.image_size
    sub_batches = []
    for (sensor, _), count in zip(mix, counts):
        if count <= 0:
            continue
        bands = get_sensor(sensor).num_bands
        image = torch.randn(count, bands, size, size, generator=generator)
        sub_batches.append(SubBatch(sensor, image.to(device)))
    return sub_batches


def measure_throughput(
    config_name: str,
    precision: str,
    device: str,
    batch: int,
    steps: int,
    warmup: int = 2,
) -> Dict[str, Any]:
    """Time ``steps`` pretraining steps (after ``warmup``) of one config in one precision."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from backend.models.config import get_config
    from backend.models.cross_sensor_mim import MsGFMPretrainModel
    from backend.train.trainer import Trainer, TrainerConfig

    if precision == "bf16" and device != "cuda":
        raise PartSkippedError(
            "bf16 autocast is measured on CUDA only (the trainer trains fp32 on CPU)"
        )
    config = get_config(config_name)
    torch.manual_seed(0)
    model = MsGFMPretrainModel(config).to(device)
    model.train()
    optimizer = Trainer(TrainerConfig(lr=1e-3)).configure_optimizer(model)
    sub_batches = synthetic_step_batch(config, batch, device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16")

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = model(sub_batches).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        with autocast:
            loss = model(sub_batches).loss
        loss.backward()
    flops = counter.get_total_flops()
    optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - started)
    # The matmul of the same precision and about the same FLOPs, in the same process.
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    n = max(256, min(8192, round((flops / 2) ** (1 / 3) / 64) * 64))
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    sync()
    matmul = []
    for _ in range(max(3, steps)):
        started = time.perf_counter()
        torch.mm(a, b)
        sync()
        matmul.append(time.perf_counter() - started)
    best = min(times)
    peak = 2 * n**3 / min(matmul)
    return {
        "config": config_name,
        "precision": precision,
        "device": device,
        "batch": batch,
        "image_size": config.image_size,
        "steps": steps,
        "step_s": [best, sorted(times)[len(times) // 2]],
        "steps_per_s": 1 / best,
        "crops_per_s": batch / best,
        "gflop_per_step": flops / 1e9,
        "tflops": flops / best / 1e12,
        "matmul_n": n,
        "matmul_tflops": peak / 1e12,
        "fraction_of_matmul": (flops / best) / peak,
        "peak_memory_gib": (
            torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
        ),
    }


def torch_throughput(
    device: str, configs: Sequence[str], batch_sizes: Dict[str, int], steps: int, warmup: int
) -> Dict[str, Any]:
    """:func:`measure_throughput` for every config and precision; a precision that cannot run
    here is recorded as skipped with its reason."""
    rows = []
    for config in configs:
        for precision in PRECISIONS:
            try:
                rows.append(
                    measure_throughput(
                        config, precision, device, batch_sizes[config], steps, warmup
                    )
                )
            except PartSkippedError as reason:
                rows.append({"config": config, "precision": precision, "skipped": str(reason)})
    return {"device": device, "runs": rows}


# --- DDP and the pretraining run --------------------------------------------------------------


def sample_root(data_root: Optional[str]) -> Path:
    """The sample data the pretraining parts read, or :class:`PartSkippedError`."""
    if data_root:
        root = Path(data_root)
    else:
        try:
            sys.path.insert(0, str(ROOT))
            from backend.data.fetch import sample_data_root
        except ImportError as exc:
            raise PartSkippedError(f"the backend is not importable ({exc})") from None
        root = sample_data_root()
    if not root.is_dir() or not any(root.iterdir()):
        raise PartSkippedError(
            f"no sample data at {root} (this machine cannot fetch it): copy the folders the "
            "manifest reads here and pass --data-root (and --manifest)"
        )
    return root


def shipped_stats_file(out: Path) -> Path:
    """The shipped encoder's band statistics as a ``--stats`` file (no 40 s recomputation)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "band_stats.json"
    path.write_text(json.dumps(json.loads(ENCODER_META.read_text())["normalization"]) + "\n")
    return path


def pretrain_command(
    out: Path, data_root: Path, stats: Path, steps: int, device: str, manifest: str = "samples"
) -> List[str]:
    """The flags of the shipped recipe (docs/pretraining.md, E) for ``steps`` steps."""
    return [
        "--config", "lite", "--manifest", manifest, "--data-root", str(data_root),
        "--stats", str(stats), "--out", str(out), "--max-steps", str(steps),
        "--batch-size", "16", "--warmup-steps", str(min(80, max(1, steps // 10))),
        "--registry-stats", "s2,s2_10band", "--jitter", "0.2", "--device", device,
        "--crop-cache", "auto", "--checkpoint-every", "200",
        "--log-every", "10", "--no-progress",
    ]  # fmt: skip


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(command: List[str], timeout: float) -> Dict[str, Any]:
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    record = {
        "command": " ".join(command),
        "returncode": result.returncode,
        "seconds": time.perf_counter() - started,
        "stderr_tail": result.stderr[-2000:],
    }
    if result.returncode:
        raise RuntimeError(f"{command[0]} exited {result.returncode}: {result.stderr[-1500:]}")
    lines = result.stdout.strip().splitlines()
    record["result"] = json.loads(lines[-1]) if lines else None
    return record


def nccl_all_reduce(timeout: float) -> Dict[str, Any]:
    """An all-reduce over NCCL in a process group of every GPU (one process each)."""
    import torch

    gpus = torch.cuda.device_count()
    code = (
        "import os, torch, torch.distributed as dist\n"
        "rank = int(os.environ['RANK']); torch.cuda.set_device(int(os.environ['LOCAL_RANK']))\n"
        "dist.init_process_group('nccl')\n"
        "x = torch.full((1 << 20,), float(rank + 1), device='cuda')\n"
        "dist.all_reduce(x)\n"
        "n = dist.get_world_size()\n"
        "assert float(x[0]) == n * (n + 1) / 2, float(x[0])\n"
        "import json; print(json.dumps({'world_size': n, 'sum': float(x[0])}) if rank == 0 else '')\n"
        "dist.destroy_process_group()\n"
    )
    script = Path(os.environ.get("TMPDIR", "/tmp")) / f"msgfm-nccl-{os.getpid()}.py"
    script.write_text(code)
    try:
        return _run([*torchrun_command(gpus), str(script)], timeout)
    finally:
        script.unlink(missing_ok=True)


def torchrun_command(processes: int) -> List[str]:
    """``torchrun --standalone`` with this Python."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}"]  # fmt: skip


def ddp_check(
    out: Path, data_root: Path, steps: int, timeout: float, manifest: str = "samples"
) -> Dict[str, Any]:
    """The trainer under torchrun on every GPU, and the NCCL all-reduce."""
    import torch

    gpus = torch.cuda.device_count()
    stats = shipped_stats_file(out)
    command = [*torchrun_command(gpus), "-m", "backend.train.pretrain"]
    command += pretrain_command(out / "run", data_root, stats, steps, "cuda", manifest)
    run = _run(command, timeout)
    note = (
        "one GPU: the trainer ran as one process (world size 1, no DDP synchronisation)"
        if gpus < 2
        else f"{gpus} processes, DDP over NCCL"
    )
    return {"gpus": gpus, "trainer": run, "nccl": nccl_all_reduce(timeout / 2), "note": note}


def pretrain_run(
    out: Path,
    data_root: Path,
    seconds: float,
    crops_per_s: Optional[float],
    device: str,
    manifest: str = "samples",
) -> Dict[str, Any]:
    """The shipped recipe for as many steps as ``seconds`` allow at ``crops_per_s`` (measured by
    the throughput part; 100 steps when it did not run), checkpoint under ``out``."""
    overhead = 60.0  # start-up, the crop cache's first build, checkpoints
    if seconds < overhead + 30:
        raise PartSkippedError(
            f"{seconds:.0f} s of budget left; a run needs at least {overhead + 30:.0f}"
        )
    # Batches of 16 use a GPU less well than the throughput part's larger ones, and the loop
    # adds data and logging: plan on half the measured rate. A run that still outlasts the
    # budget is stopped; its last checkpoint (every 50 steps, written atomically) is the result.
    rate = (crops_per_s or 0.0) / 16 * 0.5
    steps = max(10, int((seconds - overhead) * rate)) if rate else 100
    stats = shipped_stats_file(out)
    command = [sys.executable, "-m", "backend.train.pretrain"]
    command += pretrain_command(out / "run", data_root, stats, steps, device, manifest)
    command[command.index("--checkpoint-every") + 1] = "50"
    stopped = False
    try:
        run = _run(command, timeout=seconds)
    except subprocess.TimeoutExpired:
        stopped = True
        run = {"command": " ".join(command), "seconds": seconds, "result": None}
    checkpoint = out / "run" / "checkpoint-last"
    if not (checkpoint / "model.safetensors").is_file():
        raise RuntimeError(
            f"the run left no checkpoint at {checkpoint}"
            + (f" (stopped at the budget, {seconds:.0f} s, before step 50)" if stopped else "")
        )
    reached = json.loads((checkpoint / "meta.json").read_text()).get("step")
    return {
        "steps": steps,
        "checkpoint_step": reached,
        "stopped_at_budget": stopped,
        "run": run,
        "checkpoint": str(checkpoint),
    }


# --- the report -------------------------------------------------------------------------------


def run_part(name: str, function: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """Run one part: ``{"part", "status", "seconds", "result" | "reason" | "error"}``."""
    started = time.perf_counter()
    try:
        result = function()
        record: Dict[str, Any] = {"part": name, "status": "ok", "result": result}
    except PartSkippedError as reason:
        record = {"part": name, "status": "skipped", "reason": str(reason)}
    except Exception as exc:  # a failed part is reported; the others still run
        record = {"part": name, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record


def render_markdown(report: Dict[str, Any]) -> str:
    """The report as a page: environment, one line per part, then each part's figures."""
    env = report["environment"]
    lines = [
        "# msGFM device check",
        "",
        f"Started {report['started']}, {report['seconds']:.0f} s of a {report['budget_s']:.0f} s "
        f"budget. GPUs: {', '.join(env['gpus']) or 'none'}; torch {env.get('torch')}, "
        f"onnxruntime {env.get('onnxruntime')} ({', '.join(env.get('onnxruntime_providers', []))}).",
        "",
        "| part | status | seconds | note |",
        "|---|---|---|---|",
    ]
    for part in report["parts"]:
        note = part.get("reason") or part.get("error") or ""
        lines.append(f"| {part['part']} | {part['status']} | {part['seconds']} | {note} |")
    for part in report["parts"]:
        if part["status"] != "ok":
            continue
        result = part["result"]
        if part["part"] == "onnx-parity":
            lines += [
                "",
                f"## ONNX Runtime {result['provider']} against {result['reference']} "
                f"(batch {result['batch']})",
                "",
                "| model | output | max abs diff | max rel diff | arg-max agreement |",
                "|---|---|---|---|---|",
            ]
            for model in result["models"]:
                for row in model["outputs"]:
                    agreement = row.get("argmax_agreement")
                    lines.append(
                        f"| {model['model']} | {row['output']} | {row['max_abs_diff']:.3g} | "
                        f"{row['max_rel_diff']:.3g} | "
                        f"{'–' if agreement is None else f'{agreement:.4f}'} |"
                    )
        elif part["part"] == "torch-throughput":
            lines += [
                "",
                f"## Pretraining step on {result['device']}",
                "",
                "| config | precision | batch | step s (min / median) | crops/s | GFLOP/step | "
                "TFLOP/s | share of matmul | peak GiB |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for row in result["runs"]:
                if "skipped" in row:
                    lines.append(
                        f"| {row['config']} | {row['precision']} | skipped: {row['skipped']} "
                        "| | | | | | |"
                    )
                    continue
                memory = row["peak_memory_gib"]
                lines.append(
                    f"| {row['config']} | {row['precision']} | {row['batch']} | "
                    f"{row['step_s'][0]:.4f} / {row['step_s'][1]:.4f} | {row['crops_per_s']:.1f} | "
                    f"{row['gflop_per_step']:.2f} | {row['tflops']:.3f} | "
                    f"{row['fraction_of_matmul']:.1%} | {'–' if memory is None else f'{memory:.2f}'} |"
                )
        elif part["part"] == "ddp":
            lines += [
                "",
                "## DDP",
                "",
                result["note"] + ".",
                "",
                f"`{result['trainer']['command']}`",
            ]
            lines.append(f"NCCL all-reduce: {result['nccl'].get('result')}")
        elif part["part"] == "pretrain":
            lines += [
                "",
                "## Pretraining run",
                "",
                f"{result['steps']} steps planned"
                + (", stopped at the budget" if result["stopped_at_budget"] else "")
                + f"; {result['run']['seconds']:.0f} s, final loss "
                f"{(result['run'].get('result') or {}).get('loss')}; checkpoint of step "
                f"{result['checkpoint_step']}: `{result['checkpoint']}`.",
                "",
                f"`{result['run']['command']}`",
            ]
    return "\n".join(lines) + "\n"


def write_report(report: Dict[str, Any], out: Path) -> List[Path]:
    """``device_check.json`` and ``device_check.md`` in ``out``, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        ("device_check.json", json.dumps(report, indent=1, default=str) + "\n"),
        ("device_check.md", render_markdown(report)),
    ):
        path = out / name
        partial = path.with_name(f".{name}.partial")
        partial.write_text(text)
        os.replace(partial, path)
        written.append(path)
    return written


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="device_check", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("out", help="report folder (created)")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--budget-s", type=float, default=540.0, help="whole run, seconds")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per throughput run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-lite", type=int, default=64)
    parser.add_argument("--batch-small", type=int, default=64)
    parser.add_argument("--batch-base", type=int, default=16)
    parser.add_argument("--ddp-steps", type=int, default=20)
    parser.add_argument("--data-root", default=None, help="sample data (default: the cache)")
    parser.add_argument(
        "--manifest",
        default="samples",
        help="pretraining manifest of the ddp and pretrain parts (a smaller one, e.g. samples_s2, "
        "when only part of the sample data could be carried to the machine)",
    )
    parser.add_argument(
        "--allow-cpu",
        action="store_true",
        help="run the torch parts on the CPU when there is no GPU (tests; figures mean little)",
    )
    args = parser.parse_args(argv)
    if args.budget_s <= 0 or args.budget_s > 600:
        parser.error("--budget-s must be in (0, 600]: the check has to finish within 10 minutes")
    if args.steps < 1 or args.warmup < 0 or args.ddp_steps < 1:
        parser.error("--steps and --ddp-steps must be at least 1, --warmup at least 0")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    out = Path(args.out)
    started = time.perf_counter()
    deadline = started + args.budget_s
    report: Dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "budget_s": args.budget_s,
        "environment": environment(),
        "parts": [],
    }
    batches = {"lite": args.batch_lite, "small": args.batch_small, "base": args.batch_base}
    crops_per_s: Optional[float] = None

    def part(name: str, function: Callable[[], Dict[str, Any]]) -> None:
        record = run_part(name, function)
        report["parts"].append(record)
        print(f"device_check: {name}: {record['status']} ({record['seconds']} s)", file=sys.stderr)
        write_report({**report, "seconds": time.perf_counter() - started}, out)

    if "onnx-parity" in args.parts:
        part("onnx-parity", lambda: onnx_parity(sorted(MODELS.glob("*.onnx"))))
    if "torch-throughput" in args.parts:

        def throughput() -> Dict[str, Any]:
            device = require_gpu(args.allow_cpu)
            return torch_throughput(device, args.configs, batches, args.steps, args.warmup)

        part("torch-throughput", throughput)
        runs = report["parts"][-1].get("result", {}).get("runs", [])
        lite = [r for r in runs if r.get("config") == "lite" and "crops_per_s" in r]
        if lite:
            # The recipe trains in bf16 on CUDA (precision auto): its rate decides the steps.
            crops_per_s = max(r["crops_per_s"] for r in lite)
    if "ddp" in args.parts:

        def ddp() -> Dict[str, Any]:
            require_gpu(False)  # NCCL needs GPUs: no CPU stand-in for this part
            root = sample_root(args.data_root)
            # At most 3 minutes, so that the pretraining run keeps most of what is left.
            timeout = min(180.0, max(60.0, deadline - time.perf_counter() - 120))
            return ddp_check(out / "ddp", root, args.ddp_steps, timeout, args.manifest)

        part("ddp", ddp)
    if "pretrain" in args.parts:

        def pretrain() -> Dict[str, Any]:
            device = require_gpu(args.allow_cpu)
            root = sample_root(args.data_root)
            left = deadline - time.perf_counter() - 15
            return pretrain_run(out / "pretrain", root, left, crops_per_s, device, args.manifest)

        part("pretrain", pretrain)
    report["seconds"] = time.perf_counter() - started
    write_report(report, out)
    failed = [p["part"] for p in report["parts"] if p["status"] == "failed"]
    print(
        f"device_check: report in {out}/device_check.md" + (f"; failed: {failed}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
