"""Checks for the Python packages the algorithms need, with install instructions per platform."""

from __future__ import annotations

import importlib.util
import platform
import sys

from qgis.core import QgsProcessingException


def install_hint(package: str) -> str:
    """How to install ``package`` into the Python that runs this QGIS, for the user's platform."""
    system = platform.system()
    if system == "Windows":
        return (
            f"Close QGIS, open the 'OSGeo4W Shell' from the Start menu and run: "
            f"python -m pip install {package}"
        )
    if system == "Darwin":
        return (
            f"In a Terminal run: '{sys.executable}' -m pip install --user {package} "
            f"(for the QGIS.app bundle: /Applications/QGIS.app/Contents/MacOS/bin/pip3 install "
            f"{package}), then restart QGIS"
        )
    return f"In a terminal run: {sys.executable} -m pip install --user {package}, then restart QGIS"


def require_onnxruntime() -> None:
    """Raise a user-readable error when ONNX Runtime is not importable in QGIS's Python."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise QgsProcessingException(
            "msGFM needs the Python package 'onnxruntime' to run models, and QGIS's Python does not "
            f"have it. {install_hint('onnxruntime')}. On a machine with an NVIDIA GPU install "
            "'onnxruntime-gpu' instead (never both)."
        )
