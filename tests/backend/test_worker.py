"""The subprocess worker, run for real: JSON lines in and out, errors as messages, clean stops."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from backend.export.schema import OutputSpec
from backend.worker.client import (
    WORKER_MODULE,
    WorkerCancelledError,
    WorkerClient,
    WorkerError,
)

from .inference.conftest import band_spec, export_model

RGB = "rgb/rmnp-rgb.tif"
# The checkout root: `python -m backend.worker` runs from there, as `msgfm worker` would.
ROOT = str(Path(__file__).resolve().parents[2])


@pytest.fixture(scope="module")
def heavy_model(tmp_path_factory):
    """A model slow enough (about a second per batch of 8 on two cores) to cancel mid-run."""
    import torch

    class Heavy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            layers = [torch.nn.Conv2d(3, 32, 3, padding=1)]
            layers += [torch.nn.Conv2d(32, 32, 3, padding=1) for _ in range(9)]
            self.layers = torch.nn.Sequential(*layers, torch.nn.Conv2d(32, 3, 1))

        def forward(self, x):
            return self.layers(x)

    return export_model(
        Heavy(),
        tmp_path_factory.mktemp("worker_models") / "heavy.onnx",
        [band_spec("image", "rgb", 3, 120.0, 50.0)],
        [OutputSpec(name="reflectance", kind="reflectance", bands=["R", "G", "B"])],
        tile_size=128,
    )


def test_info_and_predict_through_the_worker(probability_model, sample_data, tmp_path):
    out = tmp_path / "probabilities.tif"
    fractions = []
    with WorkerClient(sys.executable) as client:
        assert client.ready["protocol"] == 1
        assert {"predict", "info"} <= set(client.ready["jobs"])
        info = client.run("info", {"model": str(probability_model)})
        assert "CPUExecutionProvider" in info["providers"]
        assert info["model"]["inputs"][0]["sensor"] == "rgb"
        result = client.run(
            "predict",
            {
                "model": str(probability_model),
                "inputs": [f"rgb={sample_data / RGB}"],
                "out": str(out),
                "batch_size": 8,
            },
            progress=lambda fraction, message: fractions.append(fraction),
        )
    assert client.process.returncode == 0
    assert result["outputs"] == [str(out)] and result["provider"] == "CPUExecutionProvider"
    assert result["tiles_run"] > 0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    with rasterio.open(out) as dst, rasterio.open(sample_data / RGB) as src:
        assert dst.crs == src.crs and (dst.width, dst.height) == (src.width, src.height)
        probabilities = dst.read(masked=True)
    np.testing.assert_allclose(probabilities.sum(axis=0).compressed(), 1.0, atol=1e-4)


def test_errors_come_back_as_messages_and_the_worker_lives_on(
    probability_model, sample_data, tmp_path
):
    with WorkerClient(sys.executable) as client:
        landsat = sample_data / "landcover/lsat7_2000_10.tif"
        with pytest.raises(WorkerError, match=r"input 'rgb' \(lsat7_2000_10.tif\)") as caught:
            client.run(
                "predict",
                {"model": str(probability_model), "inputs": [f"rgb={landsat}"], "out": "x.tif"},
            )
        assert caught.value.kind == "InputMismatchError"
        with pytest.raises(WorkerError, match="unknown job 'no-such-job'"):
            client.run("no-such-job", {})
        with pytest.raises(WorkerError, match="lacks parameter"):
            client.run("predict", {"model": str(probability_model)})
        # Still serving after three failures.
        assert client.run("info", {})["numpy"] == np.__version__
    assert client.process.returncode == 0
    assert client.stderr_tail.count("Traceback") == 0  # user errors are messages, not crashes


def test_cancel_message_stops_the_job_and_leaves_no_file(heavy_model, sample_data, tmp_path):
    out = tmp_path / "out.tif"
    started = []
    with WorkerClient(sys.executable) as client:
        with pytest.raises(WorkerCancelledError):
            client.run(
                "predict",
                {
                    "model": str(heavy_model),
                    "inputs": [f"rgb={sample_data / RGB}"],
                    "out": str(out),
                    "batch_size": 8,
                    "threads": 2,
                },
                progress=lambda fraction, message: started.append(fraction),
                is_cancelled=lambda: bool(started),  # cancel once the first batch reported
            )
        assert client.run("info", {})["python"]  # the worker takes the next job
    assert client.process.returncode == 0
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_sigterm_cancels_cleanly(heavy_model, sample_data, tmp_path):
    out = tmp_path / "out.tif"
    with subprocess.Popen(
        [sys.executable, "-m", WORKER_MODULE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as process:
        assert json.loads(process.stdout.readline())["type"] == "ready"
        request = {
            "type": "request",
            "id": "a",
            "job": "predict",
            "params": {
                "model": str(heavy_model),
                "inputs": [{"sensor": "rgb", "path": str(sample_data / RGB)}],
                "out": str(out),
                "batch_size": 8,
            },
        }
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        assert json.loads(process.stdout.readline())["type"] == "progress"
        signalled = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        events = [json.loads(line) for line in process.stdout]
        assert process.wait(30) == 0
        assert time.perf_counter() - signalled < 10
        assert events[-1] == {"type": "cancelled", "id": "a", "message": "cancelled"}
        assert not out.exists() and list(tmp_path.iterdir()) == []
        assert "Traceback" not in process.stderr.read()


def test_malformed_lines_get_protocol_errors():
    process = subprocess.run(
        [sys.executable, "-m", WORKER_MODULE],
        input='not json\n{"type": "launch"}\n',
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert process.returncode == 0
    events = [json.loads(line) for line in process.stdout.splitlines()]
    assert [e["type"] for e in events] == ["ready", "error", "error"]
    assert "one JSON object per line" in events[1]["message"]
    assert "unknown message type 'launch'" in events[2]["message"]


def test_a_missing_python_is_a_clear_error():
    with pytest.raises(WorkerError, match="cannot start the worker with Python"):
        WorkerClient("/nonexistent/python3").start()


def test_default_python_runs_this_environment():
    from backend.worker.interpreter import default_python

    python = default_python()
    done = subprocess.run(
        [python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == sys.prefix
