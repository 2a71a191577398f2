"""Fixtures for the training tests: a tiny model config, band statistics, subprocess runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from ...tiny_model import write_tiny_config

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> Path:
    return write_tiny_config(tmp_path_factory.mktemp("configs"))


@pytest.fixture(scope="session")
def band_stats(tmp_path_factory, sample_data) -> Path:
    """Statistics of the shipped manifest, computed once by the real command."""
    from backend.cli import main

    out = tmp_path_factory.mktemp("stats") / "band_stats.json"
    argv = ["data", "stats", "--data-root", str(sample_data), "--out", str(out)]
    assert main([*argv, "--num-crops", "64", "--crop-size", "64"]) == 0
    return out


def pretrain_args(out: Path, tiny_config: Path, band_stats: Path, sample_data: Path) -> List[str]:
    """Flags of a tiny pretraining run on the samples."""
    return [
        "--config", str(tiny_config), "--data-root", str(sample_data), "--stats", str(band_stats),
        "--out", str(out), "--batch-size", "4", "--warmup-steps", "2", "--device", "cpu",
        "--no-progress",
    ]  # fmt: skip


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    # One thread per process: two torchrun ranks on 2 cores, and identical float reductions
    # between the runs a resume test compares.
    env["OMP_NUM_THREADS"] = "1"
    return env


def python_command(*args: str) -> List[str]:
    return [sys.executable, "-m", "backend.train.pretrain", *args]


def run(command: List[str], timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def pretrained_tiny(tmp_path_factory, sample_data, tiny_config, band_stats) -> Path:
    """A tiny pretraining run (10 steps of ``msgfm pretrain``): the encoder finetuning starts from."""
    from backend.cli import main

    out = tmp_path_factory.mktemp("pretrained") / "run"
    args = pretrain_args(out, tiny_config, band_stats, sample_data)
    assert main(["pretrain", *args, "--max-steps", "10", "--checkpoint-every", "10"]) == 0
    return out
