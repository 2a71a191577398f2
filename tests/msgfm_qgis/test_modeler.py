"""The committed Graphical Modeler models, listed in the Toolbox and run end to end on real data.

Pan-sharpen then segment: a real WorldView-2 pair.

Both child models have fixed weights: the pan-sharpening model adds the normalised PAN to the
normalised MS (in MS units), the land-cover model is a 1 x 1 convolution over the four sharpened
bands. The expected class map is their argmax, computed here in numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .algorithms.conftest import MS_MEAN, MS_STD, PAN_MEAN, PAN_STD, export, grid, read, spec
from .algorithms.test_pansharpen import warped_onto

ROOT = Path(__file__).resolve().parents[2]
MODEL3 = ROOT / "resources" / "models3" / "pansharpen_then_segment.model3"
MS_BANDS = ["B1", "B2", "B3", "B4"]
# Class k's logit over the normalised sharpened bands: band contrasts and the brightness, which
# carries the PAN detail (the contrasts cancel it: every band gets the same PAN term).
CLASS_WEIGHTS = np.array(
    [
        [1.0, -1.0, 0.0, 0.0],
        [0.0, 1.0, -1.0, 0.0],
        [0.0, 0.0, 1.0, -1.0],
        [0.5, 0.5, 0.5, 0.5],
    ]
)


@pytest.fixture(scope="module")
def chained_models(tmp_path_factory):
    """(pan-sharpening model, land-cover model over its 4-band output)."""
    import torch

    from backend.export.schema import ClassInfo, OutputSpec

    folder = tmp_path_factory.mktemp("modeler_models")

    class AddPan(torch.nn.Module):
        def forward(self, ms, pan):
            return ms + pan

    sharpened = OutputSpec(
        name="sharpened",
        kind="reflectance",
        bands=MS_BANDS,
        scale=[MS_STD] * 4,
        offset=[MS_MEAN] * 4,
    )
    pansharpen = export(
        AddPan(),
        folder / "pansharpen.onnx",
        [
            spec("ms", "ms", MS_BANDS, MS_MEAN, MS_STD),
            spec("pan", "pan", ["PAN"], PAN_MEAN, PAN_STD),
        ],
        [sharpened],
        64,
        "pansharpening",
    )

    class PixelLandCover(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 4, 1)
            with torch.no_grad():
                self.conv.weight.copy_(
                    torch.tensor(CLASS_WEIGHTS, dtype=torch.float32)[..., None, None]
                )
                self.conv.bias.zero_()

        def forward(self, ms):
            return torch.softmax(self.conv(ms), dim=1)

    names = ["water", "vegetation", "soil", "built-up"]
    colors = ["#2b83ba", "#1a9641", "#fdae61", "#d7191c"]
    probabilities = OutputSpec(
        name="probabilities",
        kind="probability",
        bands=names,
        classes=[
            ClassInfo(value=k, name=n, color=c) for k, (n, c) in enumerate(zip(names, colors))
        ],
    )
    landcover = export(
        PixelLandCover(),
        folder / "landcover.onnx",
        [spec("ms", "ms", MS_BANDS, MS_MEAN, MS_STD)],
        [probabilities],
        64,
        "segmentation",
    )
    return pansharpen, landcover


def load_model3():
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL3)), f"{MODEL3} does not load"
    return model


def test_the_committed_model_is_valid_and_chains_the_two_algorithms(msgfm_provider):
    model = load_model3()
    assert model.validate() == (True, [])
    children = model.childAlgorithms()
    assert {c.algorithmId() for c in children.values()} == {
        "msgfm:pansharpen",
        "msgfm:segmentlandcover",
    }
    source = children["segmentlandcover"].parameterSources()["INPUT"][0]
    assert (source.outputChildId(), source.outputName()) == ("pansharpen", "OUTPUT")
    # Inputs in the order a user fills them in, not alphabetical; the land-cover model is
    # required (no bundled one takes the sharpened bands).
    inputs = [p for p in model.parameterDefinitions() if not p.isDestination()]
    assert [p.name() for p in inputs] == ["pan", "ms", "pansharpening_model", "landcover_model"]
    assert [p.name() for p in inputs if not p.flags() & p.FlagOptional] == [
        "pan",
        "ms",
        "landcover_model",
    ]


def test_model_runs_on_the_real_pan_ms_pair(run_algorithm, chained_models, sample_data, tmp_path):
    pansharpen, landcover = chained_models
    pan, ms = sample_data / "pan_ms/pan1.tif", sample_data / "pan_ms/ms1.tif"
    sharpened_path, classes_path = tmp_path / "sharpened.tif", tmp_path / "land_cover.tif"
    result = run_algorithm(
        load_model3(),
        {
            "pan": str(pan),
            "ms": str(ms),
            "pansharpening_model": str(pansharpen),
            "landcover_model": str(landcover),
            "pansharpen:pansharpened": str(sharpened_path),
            "segmentlandcover:land_cover": str(classes_path),
        },
    )
    assert result["segmentlandcover:land_cover"] == str(classes_path)
    want, got = grid(pan), grid(classes_path)
    assert (got["crs"], got["transform"], got["size"], got["count"]) == (
        want["crs"],
        want["transform"],
        want["size"],
        1,
    )

    # The first step: MS resampled onto the PAN grid plus the PAN detail (see test_pansharpen).
    sharpened = read(sharpened_path).astype(np.float64)
    pan_term = (read(pan)[0].astype(np.float64) - PAN_MEAN) / PAN_STD * MS_STD
    interior = (slice(None), slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(
        (sharpened - pan_term)[interior], warped_onto(ms, pan)[interior], atol=0.5
    )

    # The second step: the argmax of the land-cover logits over the sharpened bands.
    normalised = (sharpened - MS_MEAN) / MS_STD
    logits = np.einsum("kb,bhw->khw", CLASS_WEIGHTS, normalised)
    ordered = np.sort(logits, axis=0)
    clear = (ordered[-1] - ordered[-2]) > 1e-3
    expected = np.argmax(logits, axis=0)
    classes = read(classes_path)[0]
    assert np.array_equal(classes[clear], expected[clear])
    assert clear.mean() > 0.99
    counts = np.bincount(expected.ravel(), minlength=4)
    assert (counts > 0).sum() >= 3  # a real map, not one class everywhere


WORKFLOWS = {
    # Toolbox id: (inputs in order, demo inputs, model outputs)
    "msgfm:Remove clouds then extract embeddings": (
        ["s2", "sar"],
        {"s2": "s2_cloudy.tif", "sar": "s1.tif"},
        ["removeclouds:cloud_free", "extractembeddings:embeddings", "extractembeddings:preview"],
    ),
    "msgfm:Land cover and scene classes": (
        ["image"],
        {"image": "landsat_stack.tif"},
        ["segmentlandcover:land_cover", "classifyscenes:scene_classes"],
    ),
    "msgfm:Pan-sharpen then segment land cover": (
        ["pan", "ms", "pansharpening_model", "landcover_model"],
        None,
        [],
    ),
}


@pytest.fixture(scope="module")
def demo_inputs(sample_data, tmp_path_factory):
    """The demo's input rasters, prepared by the same script `make demo` runs."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("demo_inputs")
    script = ROOT / "scripts" / "demo_inputs.py"
    subprocess.run([sys.executable, str(script), str(sample_data), str(out)], check=True)
    return out


def test_the_toolbox_lists_every_shipped_model_with_its_inputs_in_order(msgfm_provider):
    from qgis.core import QgsApplication

    listed = {
        a.id(): a
        for a in QgsApplication.processingRegistry().algorithms()
        if a.provider() is not None and a.provider().id() == "msgfm" and a.group() == "Workflows"
    }
    assert sorted(listed) == sorted(WORKFLOWS)
    assert len(list((ROOT / "resources" / "models3").glob("*.model3"))) == len(WORKFLOWS)
    for algorithm_id, (inputs, _, _) in WORKFLOWS.items():
        names = [p.name() for p in listed[algorithm_id].parameterDefinitions()]
        assert [n for n in names if n in inputs] == inputs


@pytest.mark.parametrize(
    "algorithm_id", [a for a, (_, demo, _) in WORKFLOWS.items() if demo], ids=lambda a: a[6:]
)
def test_a_shipped_model_runs_with_its_defaults_on_the_sample_data(
    run_algorithm, bundled_models, demo_inputs, tmp_path, algorithm_id
):
    import rasterio

    _, demo, outputs = WORKFLOWS[algorithm_id]
    parameters = {name: str(demo_inputs / file) for name, file in demo.items()}
    for output in outputs:
        parameters[output] = str(tmp_path / f"{output.split(':')[1]}.tif")
    # Nothing else: every default as shipped (the bundled models: the tests' own).
    result = run_algorithm(algorithm_id, parameters)
    reference = demo_inputs / next(iter(demo.values()))
    with rasterio.open(reference) as ref:
        bounds = ref.bounds
    for output in outputs:
        with rasterio.open(result[output]) as dataset:
            assert dataset.read(masked=True).count() > 0, output  # not all nodata
            assert dataset.crs is not None
            assert dataset.bounds.left == pytest.approx(bounds.left)
            assert dataset.bounds.top == pytest.approx(bounds.top)


def test_a_shipped_workflow_runs_as_a_background_task_and_qgis_stays_responsive(
    msgfm_provider, bundled_models, demo_inputs, tmp_path
):
    """QGIS 3.22 flags every model as main-thread only; the shipped ones drop that flag, so the
    Processing dialog runs them in a task (as here) and the main thread keeps turning."""
    import threading
    import time

    from qgis.core import (
        QgsApplication,
        QgsProcessingAlgorithm,
        QgsProcessingAlgRunnerTask,
        QgsProcessingContext,
        QgsProcessingFeedback,
    )

    algorithm_id = "msgfm:Land cover and scene classes"
    workflow = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
    assert not workflow.flags() & QgsProcessingAlgorithm.FlagNoThreading
    _, demo, outputs = WORKFLOWS[algorithm_id]
    parameters = {name: str(demo_inputs / file) for name, file in demo.items()}
    for output in outputs:
        parameters[output] = str(tmp_path / f"{output.split(':')[1]}.tif")
    threads = set()

    class Feedback(QgsProcessingFeedback):
        def setProgressText(self, text):  # called on the thread that runs the steps
            threads.add(threading.get_ident())
            super().setProgressText(text)

    context, feedback = QgsProcessingContext(), Feedback()
    task = QgsProcessingAlgRunnerTask(workflow, parameters, context, feedback)
    ended = []
    task.executed.connect(lambda ok, results: ended.append((ok, results)))
    QgsApplication.taskManager().addTask(task)
    longest, last = 0.0, time.monotonic()
    deadline = last + 300
    while not ended and time.monotonic() < deadline:
        QgsApplication.processEvents()
        now = time.monotonic()
        longest, last = max(longest, now - last), now
        time.sleep(0.005)
    [(ok, results)] = ended
    assert ok, results
    assert all(results[output] for output in outputs)
    assert threads and threading.get_ident() not in threads  # the steps ran off the main thread
    # The main thread waited at most for Python's lock (ONNX Runtime opening a model holds it for
    # a few tenths of a second: 0.22 s measured here alone, 0.57 s beside another test run),
    # never for a whole step (seconds).
    assert longest < 1.0, longest
