"""Which Python runs the subprocess worker when the plugin setting names none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from backend.worker.interpreter import default_python, python_candidates


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path


def first_existing(candidates):
    return next(c for c in candidates if c.is_file())


def test_inside_qgis_on_linux_qgis_own_python_beats_venv_and_path(tmp_path):
    """sys.executable is /usr/bin/qgis; the interpreter of its prefix comes before any venv."""
    prefix = tmp_path / "usr"
    qgis_python = touch(prefix / "bin" / "python3.11")
    venv_python = touch(tmp_path / "venv" / "bin" / "python")
    candidates = python_candidates(
        str(prefix / "bin" / "qgis"),
        (str(prefix), str(prefix)),
        {"VIRTUAL_ENV": str(tmp_path / "venv")},
        "Linux",
        (3, 11),
    )
    assert first_existing(candidates) == qgis_python
    assert candidates.index(qgis_python) < candidates.index(venv_python)
    assert prefix / "bin" / "qgis" not in candidates  # the QGIS program is not a Python


def test_a_python_on_path_that_embedded_python_guessed_is_not_trusted(tmp_path):
    """Seen in QGIS 3.22 on Debian: sys.executable is a pyenv shim found on PATH, the prefix /usr."""
    shim = touch(tmp_path / ".pyenv" / "shims" / "python3")
    qgis_python = touch(tmp_path / "usr" / "bin" / "python3.11")
    prefix = str(tmp_path / "usr")
    candidates = python_candidates(str(shim), (prefix, prefix, prefix), {}, "Linux", (3, 11))
    assert first_existing(candidates) == qgis_python
    assert shim not in candidates


def test_a_plain_python_is_used_as_it_is(tmp_path):
    python = touch(tmp_path / "env" / "bin" / "python")
    touch(tmp_path / "env" / "bin" / "python3.9")
    candidates = python_candidates(str(python), (str(tmp_path / "env"),), {}, "Linux", (3, 9))
    assert candidates[0] == python


def test_osgeo4w_python_above_the_qgis_program(tmp_path):
    """OSGeo4W: bin/qgis-bin.exe, apps/Python39/python.exe; exec_prefix may be unset there."""
    root = tmp_path / "OSGeo4W"
    python = touch(root / "apps" / "Python39" / "python.exe")
    candidates = python_candidates(str(root / "bin" / "qgis-bin.exe"), (), {}, "Windows", (3, 9))
    assert first_existing(candidates) == python


def test_macos_bundle_python(tmp_path):
    macos = tmp_path / "QGIS.app" / "Contents" / "MacOS"
    python = touch(macos / "bin" / "python3")
    candidates = python_candidates(str(macos / "QGIS"), ("/nonexistent",), {}, "Darwin", (3, 9))
    assert first_existing(candidates) == python


def test_setup_environment_when_qgis_python_is_missing(tmp_path):
    venv_python = touch(tmp_path / "venv" / "bin" / "python")
    explicit = touch(tmp_path / "custom" / "python3")
    environ = {"VIRTUAL_ENV": str(tmp_path / "venv"), "MSGFM_PYTHON": str(explicit)}
    candidates = python_candidates(str(tmp_path / "qgis"), ("/nonexistent",), environ, "Linux")
    assert [c for c in candidates if c.is_file()] == [explicit, venv_python]


def test_default_python_here_runs_the_backend_dependencies():
    python = default_python()
    assert Path(python).is_file()
    check = subprocess.run(
        [python, "-c", "import rasterio, numpy, sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == sys.prefix  # the same environment as this Python
