"""Checks for the Python packages the algorithms need, and installing them into QGIS's own Python.

Inside QGIS ``sys.executable`` is the QGIS program or whatever Python the embedded interpreter found
on PATH (a pyenv shim, say): a ``pip`` command built from it installs somewhere QGIS never looks. The
command here runs the interpreter QGIS embeds (the worker's :func:`default_python`), keeps the
installed numpy exactly as it is (numpy 2 breaks Debian's GDAL bindings), installs for the user, and
passes ``--break-system-packages`` where the Python is marked as managed by the system (PEP 668).
"""

from __future__ import annotations

import importlib.util
import platform
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import List

from qgis.core import QgsProcessingException

from backend.worker.interpreter import default_python

from .i18n import tr

ONNXRUNTIME = "onnxruntime"


def qgis_python() -> str:
    """The Python interpreter QGIS embeds (not ``sys.executable``, see the module docstring)."""
    return default_python()


def numpy_pin() -> str:
    """Keep numpy as installed: ``numpy==<version>``, or ``numpy<2`` when there is none."""
    try:
        import numpy

        return f"numpy=={numpy.__version__}"
    except ImportError:
        return "numpy<2"


def install_command(package: str = ONNXRUNTIME) -> List[str]:
    """The command that installs ``package`` into QGIS's Python with the right pins."""
    command = [qgis_python(), "-m", "pip", "install"]
    if sys.prefix == sys.base_prefix:  # not a virtual environment: install for this user
        command.append("--user")
    if (Path(sysconfig.get_paths()["stdlib"]) / "EXTERNALLY-MANAGED").exists():
        command.append("--break-system-packages")
    return [*command, package, numpy_pin()]


def command_text(command: List[str]) -> str:
    if platform.system() == "Windows":
        return subprocess.list2cmdline(command)
    return " ".join(shlex.quote(part) for part in command)


def install_hint(package: str) -> str:
    """How to install ``package`` into the Python that runs this QGIS, for the user's platform."""
    command = command_text(install_command(package))
    if platform.system() == "Windows":
        return (
            f"Use msGFM's 'Install' button in the message bar, or close QGIS, open the OSGeo4W "
            f"Shell and run: {command}"
        )
    return f"Use msGFM's 'Install' button in the message bar, or in a terminal run: {command}"


def onnxruntime_missing() -> bool:
    return importlib.util.find_spec(ONNXRUNTIME) is None


def require_onnxruntime() -> None:
    """Raise a user-readable error when ONNX Runtime is not importable in QGIS's Python."""
    if onnxruntime_missing():
        raise QgsProcessingException(
            tr(
                "msGFM needs the Python package 'onnxruntime' to run models, and QGIS's "
                "Python does not have it. {}, then restart QGIS. On a machine with an NVIDIA "
                "GPU install 'onnxruntime-gpu' instead (never both)."
            ).format(install_hint(ONNXRUNTIME))
        )
