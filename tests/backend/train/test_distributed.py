"""Two-process DDP (gloo on CPU) under torchrun keeps identical replicas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from backend.models.config import get_config
from backend.models.cross_sensor_mim import MsGFMPretrainModel
from backend.train.metrics_log import read_metrics
from backend.train.trainer import parameter_checksum

from .conftest import REPO, pretrain_args, run, subprocess_env


def test_torchrun_two_processes_end_identical(tmp_path, sample_data, tiny_config, band_stats):
    out = tmp_path / "ddp"
    torchrun = str(Path(sys.executable).parent / "torchrun")
    args = pretrain_args(out, tiny_config, band_stats, sample_data)
    command = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "backend.train.pretrain"]
    result = run([*command, *args, "--max-steps", "4", "--checkpoint-every", "4"], timeout=240)
    assert "with 2 processes (gloo)" in result.stderr

    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 4
    first, second = summary["parameter_checksums"]
    assert first == second  # both ranks hold bit-identical parameters
    torch.manual_seed(0)
    untrained = parameter_checksum(MsGFMPretrainModel(get_config(str(tiny_config))))
    assert first != untrained  # and they did train
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    # Ranks draw different crops, so over 4 steps more sensors appear than one rank alone sees.
    assert len(set().union(*(r["per_sensor_loss"] for r in records))) >= 3


def test_a_rank_leaves_without_the_interpreter_s_teardown():
    """A rank of a multi-process run exits with its code and its printed lines, skipping the
    teardown where gloo's threads could abort it (SIGABRT after a finished run); a single process
    exits normally."""
    code = (
        "import atexit; from backend.train.distributed import exit_process; "
        "atexit.register(lambda: print(' teardown ran')); print('result', end=''); exit_process(3)"
    )
    for world, expected in (("2", "result"), ("1", "result teardown ran")):
        env = {**subprocess_env(), "WORLD_SIZE": world}
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert (done.returncode, done.stdout.strip()) == (3, expected)
