"""Training through the subprocess worker: a finetune job end to end, progress events, cancel."""

from __future__ import annotations

import json
import sys
import time

import pytest

from backend.train.metrics_log import read_metrics
from backend.worker.client import WorkerCancelledError, WorkerClient, WorkerError


def _params(out, pretrained, sample_data, steps):
    return {
        "task": "segmentation",
        "init": str(pretrained),
        "data": "finetune_segmentation",
        "data_root": str(sample_data),
        "out": str(out),
        "max_steps": steps,
        "batch_size": 4,
        "tile_size": 32,
        "val_every": 3,
        "device": "cpu",
        "checkpoint_every": 2,
    }


def test_finetune_job_runs_and_cancels_through_the_worker(tmp_path, sample_data, pretrained_tiny):
    events = []
    with WorkerClient(sys.executable, env={"OMP_NUM_THREADS": "1"}) as client:
        assert {"pretrain", "finetune", "export"} <= set(client.ready["jobs"])
        result = client.run(
            "finetune",
            _params(tmp_path / "done", pretrained_tiny, sample_data, 4),
            progress=lambda fraction, message: events.append((fraction, message)),
        )
        assert result["step"] == 4 and result["task"] == "segmentation"
        assert "val_mean_iou" in result["val_metrics"]
        steps = [message for _, message in events if message.startswith("step ")]
        assert steps[0].startswith("step 1/4") and steps[-1].startswith("step 4/4")
        fractions = [fraction for fraction, _ in events]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0

        # A long run, cancelled once it has taken a few steps.
        cancelled = tmp_path / "cancelled"
        started = []

        def progress(fraction, message):
            started.append(message)

        def is_cancelled():
            return any(m.startswith("step 3/") for m in started)

        begin = time.time()
        with pytest.raises(WorkerCancelledError):
            client.run(
                "finetune",
                _params(cancelled, pretrained_tiny, sample_data, 500),
                progress=progress,
                is_cancelled=is_cancelled,
            )
        assert time.time() - begin < 120
        # It stopped within a step or so of the cancel, leaving whole checkpoints behind.
        logged = [r["step"] for r in read_metrics(cancelled / "metrics.jsonl") if "loss" in r]
        assert 3 <= max(logged) <= 5
        meta = json.loads((cancelled / "checkpoint-last" / "meta.json").read_text())
        assert meta["step"] in (2, 4)

        # Bad parameters come back as a clear error; the worker lives on.
        with pytest.raises(WorkerError, match="lacks parameter"):
            client.run("finetune", {"task": "segmentation"})
    assert client.process.returncode == 0
