"""A run killed with SIGKILL and resumed ends where an uninterrupted run ends."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file

from backend.checkpoints import load_checkpoint, resolve_checkpoint
from backend.train.metrics_log import read_metrics

from .conftest import REPO, pretrain_args, python_command, run, subprocess_env

STEPS = 10


def _weights(out):
    return load_file(str(resolve_checkpoint(out) / "model.safetensors"))


def test_sigkill_then_resume_matches_uninterrupted(tmp_path, sample_data, tiny_config, band_stats):
    reference = tmp_path / "reference"
    base = ["--max-steps", str(STEPS)]
    run(python_command(*pretrain_args(reference, tiny_config, band_stats, sample_data), *base,
                       "--checkpoint-every", "5"))  # fmt: skip

    killed = tmp_path / "killed"
    # A checkpoint at every step: the kill is likely to land while one is being written.
    args = [*pretrain_args(killed, tiny_config, band_stats, sample_data), *base]
    process = subprocess.Popen(
        python_command(*args, "--checkpoint-every", "1"),
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            metrics = killed / "metrics.jsonl"
            if metrics.exists() and any(r["step"] >= 4 for r in read_metrics(metrics)):
                break
            time.sleep(0.02)
        else:
            pytest.fail("the run to be killed never reached step 4")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    # Whatever moment the kill hit, the checkpoint on disk is whole and loadable.
    interrupted = load_checkpoint(killed)
    stopped_at = interrupted["meta"]["step"]
    assert 3 <= stopped_at < STEPS
    assert interrupted["trainer_state"]["step"] == stopped_at

    run(python_command(*args, "--checkpoint-every", "1", "--resume"))

    expected, resumed = _weights(reference), _weights(killed)
    assert expected.keys() == resumed.keys()
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)
    reference_log = read_metrics(reference / "metrics.jsonl")
    resumed_log = read_metrics(killed / "metrics.jsonl")
    assert [r["step"] for r in resumed_log] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in resumed_log] == pytest.approx(
        [r["loss"] for r in reference_log], rel=1e-5
    )
    assert load_checkpoint(killed)["meta"]["step"] == STEPS
