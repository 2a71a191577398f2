"""The plugin's life cycle in QGIS, and the promise that importing it stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qgis.core import QgsApplication

import msgfm_qgis

ROOT = Path(__file__).resolve().parents[2]


def test_class_factory_registers_and_unloads_the_provider(qgis_iface):
    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("msgfm")
    if existing is not None:  # registered by the session fixture in another test
        registry.removeProvider(existing)
    plugin = msgfm_qgis.classFactory(qgis_iface)
    plugin.initGui()
    provider = registry.providerById("msgfm")
    assert provider is not None
    assert provider.name() == "msGFM"
    assert not provider.icon().isNull()
    ids = {algorithm.id() for algorithm in provider.algorithms()}
    assert "msgfm:modelinfo" in ids
    assert all(algorithm.shortHelpString() for algorithm in provider.algorithms())
    plugin.unload()
    assert registry.providerById("msgfm") is None


def test_class_factory_works_without_iface():
    """qgis_process passes iface=None: initProcessing alone must register the provider."""
    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("msgfm")
    if existing is not None:
        registry.removeProvider(existing)
    plugin = msgfm_qgis.classFactory(None)
    plugin.initProcessing()
    plugin.initProcessing()  # idempotent: QGIS may call it again
    assert registry.providerById("msgfm") is not None
    plugin.unload()


def run_fresh_python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new Python from the repository root, without this process's imports."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
    )


def test_importing_the_plugin_imports_neither_torch_nor_onnxruntime():
    code = (
        "import sys, msgfm_qgis, msgfm_qgis.plugin, msgfm_qgis.provider\n"
        "heavy = sorted(m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = run_fresh_python(code)
    assert result.stdout.strip() == ""


def test_registering_the_provider_imports_no_numerical_library():
    """QGIS start-up pays for registration: numpy, onnxruntime, rasterio, torch wait for a run."""
    code = (
        "import sys\n"
        "from qgis.core import QgsApplication\n"
        "app = QgsApplication([], False)\n"
        "app.initQgis()\n"
        "import msgfm_qgis\n"
        "plugin = msgfm_qgis.classFactory(None)\n"
        "plugin.initProcessing()\n"
        "provider = QgsApplication.processingRegistry().providerById('msgfm')\n"
        "count = len(provider.algorithms())\n"
        "names = ('numpy', 'onnxruntime', 'onnx', 'torch', 'rasterio')\n"
        "heavy = sorted(m for m in names if m in sys.modules)\n"
        "print(count, ','.join(heavy) or '-')\n"
        "plugin.unload()\n"
    )
    result = run_fresh_python(code)
    count, heavy = result.stdout.split()
    assert int(count) >= 9
    assert heavy == "-"
