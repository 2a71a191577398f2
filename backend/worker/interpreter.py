"""Finding the Python interpreter that runs the worker (inside QGIS ``sys.executable`` is QGIS)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import List, Mapping, Optional, Sequence

from .client import WorkerError


def python_candidates(
    executable: str = "",
    exec_prefixes: Sequence[str] = (),
    environ: Optional[Mapping[str, str]] = None,
    system: str = "",
    version: Optional[Sequence[int]] = None,
) -> List[Path]:
    """Interpreters to try for the worker, best first (see :func:`default_python`).

    Args:
        executable: ``sys.executable`` (the QGIS program inside QGIS).
        exec_prefixes: ``sys.prefix``, ``sys.exec_prefix`` and ``sys.base_exec_prefix``.
        environ: the environment (``VIRTUAL_ENV``, ``MSGFM_PYTHON``).
        system: ``platform.system()`` (``Linux``, ``Windows``, ``Darwin``).
        version: ``(major, minor)`` of the running Python.
    """
    import platform

    environ = os.environ if environ is None else environ
    system = system or platform.system()
    major, minor = tuple(version or sys.version_info[:2])[:2]
    windows = system == "Windows"
    candidates: List[Path] = []
    prefixes = [Path(p) for p in exec_prefixes if p]
    # sys.executable is the interpreter only when it lies in the environment's prefix: Python
    # embedded in QGIS guesses it from PATH (e.g. a pyenv shim of an unrelated Python).
    trusted = any(_inside(Path(executable), prefix) for prefix in prefixes)
    if executable and Path(executable).name.lower().startswith("python") and trusted:
        candidates.append(Path(executable))  # a plain Python (venv, tests, the CLI)
    # QGIS's own Python: the interpreter that shares its packages (rasterio, GDAL, numpy<2).
    for prefix in prefixes:
        if windows:
            candidates += [prefix / "python.exe", prefix / "python3.exe"]
        else:
            candidates += [prefix / "bin" / f"python{major}.{minor}", prefix / "bin" / "python3"]
    if executable:
        program = Path(executable).parent
        if windows:
            # OSGeo4W and the standalone installer: bin/qgis-bin.exe beside bin/python.exe, or
            # apps/Python3X/python.exe above it.
            candidates.append(program / "python.exe")
            for root in (program.parent, program.parent.parent):
                candidates.append(root / "bin" / "python.exe")
                candidates.append(root / "apps" / f"Python{major}{minor}" / "python.exe")
        elif system == "Darwin":
            candidates.append(program / "bin" / "python3")  # QGIS.app/Contents/MacOS/bin/python3
    # The environment the plugin was set up from.
    if environ.get("MSGFM_PYTHON"):
        candidates.append(Path(environ["MSGFM_PYTHON"]))
    if environ.get("VIRTUAL_ENV"):
        venv = Path(environ["VIRTUAL_ENV"])
        candidates.append(venv / "Scripts" / "python.exe" if windows else venv / "bin" / "python")
    unique: List[Path] = []
    for candidate in candidates:
        if candidate not in unique:
            unique.append(candidate)
    return unique


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies under ``folder`` (unresolved: a venv's python links elsewhere)."""
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def default_python() -> str:
    """The Python interpreter for the worker when the plugin setting names none.

    Inside QGIS ``sys.executable`` is the QGIS program itself or a Python that the embedded
    interpreter found on PATH, and a PATH lookup can find any Python (a pyenv shim without rasterio,
    say). In order: ``sys.executable`` when it is a Python inside the running environment; the
    interpreter of QGIS's own Python (``sys.exec_prefix`` / ``sys.base_exec_prefix``, on Windows
    ``python.exe`` beside or above the QGIS program, on macOS QGIS.app's ``bin/python3``); then the
    environment the plugin was set up from (``MSGFM_PYTHON``, ``VIRTUAL_ENV``); last, PATH.

    Raises:
        WorkerError: no interpreter was found.
    """
    candidates = python_candidates(
        sys.executable or "", (sys.prefix, sys.exec_prefix, sys.base_exec_prefix), os.environ
    )
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = shutil.which(f"python{version}") or shutil.which("python3")
    if found:
        return found
    raise WorkerError(
        "cannot find a Python interpreter for the worker; set its path in the plugin settings"
    )
