"""Cancelled and failed runs stop promptly and leave no output file behind."""

from __future__ import annotations

import re
import threading
import time

import pytest

from backend.export.schema import OutputSpec
from backend.inference.cancel import CancelToken
from backend.inference.engine import run_inference
from backend.inference.errors import (
    DeviceUnavailableError,
    InferenceCancelledError,
    InferenceError,
    ModelError,
    ModelOutputError,
)
from backend.inference.inputs import RasterInput

from .conftest import band_spec, export_model

LANDSAT = "landcover/lsat7_2000_10.tif"


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name or p.name.startswith("."))


def run_in_thread(**kwargs):
    outcome = {}

    def target():
        try:
            outcome["result"] = run_inference(**kwargs)
        except BaseException as exc:  # the test inspects what the run raised
            outcome["error"] = exc
        outcome["ended"] = time.perf_counter()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def test_cancel_from_another_thread_between_batches(model_factory, sample_data, tmp_path):
    token = CancelToken()
    first_batch_done = threading.Event()
    resume = threading.Event()

    def progress(fraction, message):
        first_batch_done.set()
        resume.wait(10)  # hold the run until the other thread has cancelled

    out = tmp_path / "out.tif"
    thread, outcome = run_in_thread(
        model_path=model_factory("identity", bands=1, tile=32),
        inputs=[RasterInput("s2", sample_data / LANDSAT)],
        out_path=out,
        batch_size=2,
        progress=progress,
        cancel=token,
    )
    assert first_batch_done.wait(30)
    token.cancel()
    resume.set()
    thread.join(30)
    assert isinstance(outcome.get("error"), InferenceCancelledError)
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_cancel_terminates_a_running_batch(sample_data, tmp_path):
    import torch

    class Heavy(torch.nn.Module):
        """Ten 3 x 3 convolutions of 32 channels: a batch takes about a second on two cores."""

        def __init__(self):
            super().__init__()
            # Wide enough that a batch takes far longer than the engine's cancel latency.
            layers = [torch.nn.Conv2d(1, 96, 3, padding=1)]
            layers += [torch.nn.Conv2d(96, 96, 3, padding=1) for _ in range(9)]
            self.layers = torch.nn.Sequential(*layers)
            self.head = torch.nn.Conv2d(96, 1, 1)

        def forward(self, x):
            return self.head(self.layers(x))

    spec = band_spec("image", "s2", 1, 100.0, 50.0)
    output = OutputSpec(name="reflectance", kind="reflectance", bands=["B1"])
    model = export_model(Heavy(), tmp_path / "heavy.onnx", [spec], [output], tile_size=128)
    token = CancelToken()
    batch_started = threading.Event()
    out = tmp_path / "out.tif"
    started = time.perf_counter()
    thread, outcome = run_in_thread(
        model_path=model,
        inputs=[RasterInput("s2", sample_data / LANDSAT)],
        out_path=out,
        batch_size=8,
        threads=2,
        # Progress 0 reports stages before any batch (opening, reading); later reports count
        # tiles, some of them skipped as nodata: wait for one that follows a model batch.
        progress=lambda fraction, message: ran_tiles(message) > 0 and batch_started.set(),
        cancel=token,
    )
    assert batch_started.wait(60)  # the first batch ran; the second is now inside ONNX Runtime
    batch_seconds = time.perf_counter() - started
    time.sleep(min(0.2, batch_seconds / 5))
    cancelled_at = time.perf_counter()
    token.cancel()
    thread.join(60)
    assert isinstance(outcome.get("error"), InferenceCancelledError)
    # RunOptions.terminate stopped the batch: the run ended well before a batch could finish.
    assert outcome["ended"] - cancelled_at < 0.6 * batch_seconds
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_failing_run_leaves_no_partial_file_and_keeps_an_older_output(
    model_factory, sample_data, tmp_path
):
    import torch

    class OneBand(torch.nn.Module):
        def forward(self, x):
            return x[:, :1]

    # The metadata promises three output bands; the graph returns one: refused at the first batch.
    model = export_model(
        OneBand(),
        tmp_path / "liar.onnx",
        [band_spec("image", "s2", 1, 100.0, 50.0)],
        [OutputSpec(name="reflectance", kind="reflectance", bands=["B1", "B2", "B3"])],
        tile_size=32,
    )
    out = tmp_path / "out.tif"
    out.write_bytes(b"an earlier result")
    with pytest.raises(ModelOutputError, match="'reflectance' has shape"):
        run_inference(model, [RasterInput("s2", sample_data / LANDSAT)], out)
    assert out.read_bytes() == b"an earlier result"
    assert leftovers(tmp_path) == []


def test_bad_model_and_folder_and_device_are_clear_errors(model_factory, sample_data, tmp_path):
    source = [RasterInput("s2", sample_data / LANDSAT)]
    not_a_model = tmp_path / "model.onnx"
    not_a_model.write_text("hello")
    with pytest.raises(ModelError, match=r"model\.onnx is not a valid ONNX model"):
        run_inference(not_a_model, source, tmp_path / "o.tif")
    model = model_factory("identity", bands=1, tile=32)
    with pytest.raises(InferenceError, match=r"output folder .* does not exist"):
        run_inference(model, source, tmp_path / "missing" / "o.tif")
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(DeviceUnavailableError, match="no CUDA provider"):
            run_inference(model, source, tmp_path / "o.tif", device="cuda")
    assert not (tmp_path / "o.tif").exists()


def test_token_cancelled_before_the_run_starts(model_factory, sample_data, tmp_path):
    token = CancelToken(poll=lambda: True)  # e.g. QGIS feedback.isCanceled already true
    with pytest.raises(InferenceCancelledError):
        run_inference(
            model_factory("identity", bands=1, tile=32),
            [RasterInput("s2", sample_data / LANDSAT)],
            tmp_path / "o.tif",
            cancel=token,
        )
    assert list(tmp_path.iterdir()) == []


def ran_tiles(message: str) -> int:
    """Tiles the model ran, from the engine's ``"D/T tiles (R run, S skipped as nodata)"``."""
    match = re.match(r"\d+/\d+ tiles \((\d+) run, \d+ skipped", message)
    return int(match.group(1)) if match else 0
