"""Installing ONNX Runtime into QGIS's own Python: the command, and the message-bar offer."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy
import pytest
from qgis.core import Qgis
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QPushButton

from msgfm_qgis.dependencies import install_command, qgis_python


def test_install_command_runs_qgis_python_and_keeps_numpy():
    command = install_command("onnxruntime")
    python = Path(command[0])
    # The interpreter of this Python environment, not whatever PATH finds first.
    assert python.is_file()
    assert python.parent in {Path(p) / "bin" for p in (sys.prefix, sys.exec_prefix)}
    assert command[1:4] == ["-m", "pip", "install"]
    assert command[-2:] == ["onnxruntime", f"numpy=={numpy.__version__}"]
    managed = (Path(sysconfig.get_paths()["stdlib"]) / "EXTERNALLY-MANAGED").exists()
    assert ("--break-system-packages" in command) == managed
    assert ("--user" in command) == (sys.prefix == sys.base_prefix)
    # The interpreter runs pip and has the numpy the pin keeps.
    version = subprocess.run(
        [str(python), "-c", "import numpy; print(numpy.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == numpy.__version__
    assert (
        subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True).returncode == 0
    )
    assert qgis_python() == str(python)


def wait_for(offer, seconds=60):
    deadline = time.monotonic() + seconds
    while offer.process.state() != 0 or offer.output == "":
        QCoreApplication.processEvents()
        assert time.monotonic() < deadline, "the install never ended"
        time.sleep(0.01)
    for _ in range(20):
        QCoreApplication.processEvents()


def messages(bar):
    return [(item.text(), item.level()) for item in bar.items()]


@pytest.fixture
def no_onnxruntime(monkeypatch):
    """Simulated: onnxruntime is installed here, so the import check is made to fail."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "onnxruntime" else real_find_spec(name, *args),
    )


class Desktop:
    """The part of QGIS's iface the offer uses, with a real message bar widget."""

    def __init__(self):
        from qgis.gui import QgsMessageBar

        self.bar = QgsMessageBar()

    def messageBar(self):
        return self.bar


def test_plugin_load_offers_the_install_and_says_what_it_ran(qgis_app, no_onnxruntime):
    from msgfm_qgis.dependency_bar import DependencyOffer, offer_missing_dependencies

    desktop = Desktop()
    bar = desktop.messageBar()
    offer = offer_missing_dependencies(desktop)
    assert offer is not None and bar.currentItem() is offer.item
    assert offer.item.level() == Qgis.Warning
    button = offer.item.findChild(QPushButton)
    assert button.text() == "Install ONNX Runtime"
    assert button.toolTip().startswith(qgis_python())
    assert f"numpy=={numpy.__version__}" in button.toolTip()

    # A real process stands in for pip (which would download): success, then failure.
    ok = DependencyOffer(bar, [sys.executable, "-c", "print('Successfully installed onnxruntime')"])
    ok.show()
    ok.item.findChild(QPushButton).click()
    wait_for(ok)
    [(text, level)] = messages(bar)
    assert level == Qgis.Success
    assert text.startswith("ONNX Runtime is installed (ran: ") and "Restart QGIS" in text

    failing = [
        sys.executable,
        "-c",
        "import sys; print('ERROR: no matching distribution'); sys.exit(1)",
    ]
    bad = DependencyOffer(bar, failing)
    bad.show()
    bad.install()
    wait_for(bad)
    [(text, level)] = messages(bar)
    assert level == Qgis.Critical
    assert "failed (ERROR: no matching distribution)" in text and "ran: " in text
    bar.clearWidgets()


def test_no_offer_when_onnxruntime_is_there_or_without_a_desktop(qgis_app):
    from msgfm_qgis.dependency_bar import offer_missing_dependencies

    assert offer_missing_dependencies(Desktop()) is None
    assert offer_missing_dependencies(None) is None
