"""Progress and cancellation as the Processing dialog sees them: the algorithm runs in a task on a
worker thread while the main thread keeps the event loop turning and the user presses Cancel.

Runs the bundled segmentation model (the tests' own, tests/bundled_models.py) on the real
Landsat-7 bands (many small batches), in both backends.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
)
from qgis.PyQt.QtCore import QCoreApplication

LANDSAT = [f"landcover/lsat7_2000_{band}.tif" for band in (10, 20, 30, 40, 50, 70)]

pytestmark = pytest.mark.usefixtures("bundled_models")


@pytest.fixture
def landsat_stack(sample_data, tmp_path_factory) -> Path:
    """A VRT over copies of the bands, one per test: a task of the test before (cancelled, still
    winding down) or QGIS's statistics written beside shared files never touch this test's input
    (the subprocess cancel test once found its input layer failing to load)."""
    import shutil

    from osgeo import gdal

    folder = tmp_path_factory.mktemp("landsat")
    files = [shutil.copy(sample_data / name, folder / Path(name).name) for name in LANDSAT]
    out = folder / "landsat_stack.vrt"
    gdal.BuildVRT(str(out), [str(f) for f in files], options=gdal.BuildVRTOptions(separate=True))
    return out


class Recorder(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.texts, self.started = [], time.monotonic()
        self.first_text_at = None
        self.errors = []

    def reportError(self, error, fatalError=False):
        self.errors.append(error)
        super().reportError(error, fatalError)

    def setProgressText(self, text):
        if self.first_text_at is None:
            self.first_text_at = time.monotonic() - self.started
        self.texts.append(text)
        super().setProgressText(text)


def run_task(msgfm_provider, parameters, cancel_after_percent=None):
    """Run segmentlandcover as a task; returns (feedback, finished ok, cancel latency, max stall)."""
    manager = QgsApplication.taskManager()
    # A cancelled task of the test before may still be winding down: start from an idle manager.
    idle_by = time.monotonic() + 60
    while manager.countActiveTasks() and time.monotonic() < idle_by:
        QCoreApplication.processEvents()
        time.sleep(0.01)
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("msgfm:segmentlandcover")
    context, feedback = QgsProcessingContext(), Recorder()
    task = QgsProcessingAlgRunnerTask(algorithm, parameters, context, feedback)
    outcome = {}
    task.executed.connect(lambda ok, results: outcome.update(ok=ok, at=time.monotonic()))
    manager.addTask(task)
    cancelled_at, stall, last = None, 0.0, time.monotonic()
    deadline = last + 300
    while "ok" not in outcome and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        now = time.monotonic()
        stall, last = max(stall, now - last), now
        if (
            cancel_after_percent is not None
            and cancelled_at is None
            and feedback.progress() >= cancel_after_percent
        ):
            feedback.cancel()  # what the dialog's Cancel button does
            cancelled_at = time.monotonic()
        time.sleep(0.002)
    assert "ok" in outcome, "the task never finished"
    latency = None if cancelled_at is None else outcome["at"] - cancelled_at
    return feedback, outcome["ok"], latency, stall


def test_a_run_says_what_it_does_from_the_start_and_logs_every_10_percent(
    msgfm_provider, landsat_stack, tmp_path
):
    out = tmp_path / "classes.tif"
    parameters = {"INPUT": str(landsat_stack), "OUTPUT": str(out), "OVERLAP": 0.75, "BATCH_SIZE": 1}
    feedback, ok, _, _ = run_task(msgfm_provider, parameters)
    assert ok and out.exists()
    assert feedback.first_text_at is not None and feedback.first_text_at < 1.0
    assert feedback.texts[0].startswith("Opening the model")
    assert any("reading the inputs" in text for text in feedback.texts)
    tiles = [t for t in feedback.texts if "tiles (" in t]
    # Hundreds of batches, about one line per 10 %.
    assert 5 <= len(tiles) <= 12, tiles
    assert tiles[-1].startswith("100%")


@pytest.mark.parametrize("backend", [0, 1], ids=["in-process", "subprocess"])
def test_cancel_stops_within_a_second(msgfm_provider, landsat_stack, tmp_path, backend):
    out = tmp_path / "classes.tif"
    parameters = {
        "INPUT": str(landsat_stack),
        "OUTPUT": str(out),
        "OVERLAP": 0.75,
        "BATCH_SIZE": 1,
        "BACKEND": backend,
    }
    feedback, ok, latency, stall = run_task(msgfm_provider, parameters, cancel_after_percent=5)
    assert not ok
    # No latency: the run ended before it was cancelled (its errors and last lines say why).
    assert latency is not None, (feedback.errors, feedback.texts[-5:])
    assert latency < 1.0, latency
    assert stall < 0.5, stall  # the main thread (QGIS's window) never froze
    assert sorted(p.name for p in tmp_path.iterdir()) == []
