"""A scratch QGIS set-up for tests that run ``qgis_process`` as a user does.

The built plugin zip unpacked into a plugin folder and enabled in an empty profile, and the
``qgis_process`` wrapper that ``scripts/setup.sh`` writes (written afresh from this checkout's
``setup.sh``, so a change to the wrapper is tested before the venv's copy is rewritten).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, Optional

import build

ROOT = Path(__file__).resolve().parent.parent


def write_wrapper(target: Path) -> Path:
    """The ``qgis_process`` wrapper of ``scripts/setup.sh`` for this venv, written to ``target``."""
    env = {**os.environ, "MSGFM_VENV": sys.prefix}
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh"), "--write-qgis-process-wrapper", str(target)],
        env=env,
        check=True,
    )
    return target


def qgis_environment(root: Path, models: Optional[Path], enable: bool = True) -> Dict[str, str]:
    """Install the plugin zip under ``root`` and return the environment of a user's shell there:
    ``QGIS_PLUGINPATH`` and ``QGIS_CUSTOM_CONFIG_PATH`` set, the plugin enabled, a private
    ``HOME`` and ``TMPDIR`` (``root/tmp``: what a run leaves in the temporary folder is seen).
    ``models``: the folder the zip ships as its bundled models (the tests' own,
    tests/bundled_models.py; None: this checkout's resources/models, which the acceptance gate
    may empty). ``enable``: enable the plugin in the profile (else the caller does, as the README
    says)."""
    plugins, profile, tmp = root / "plugins", root / "profile", root / "tmp"
    for folder in (plugins, profile, tmp):
        folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(build.build(root / "dist", models=models)) as archive:
        archive.extractall(plugins)
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("QGIS_", "PYTHON"))
    }
    env.update(
        QGIS_CUSTOM_CONFIG_PATH=str(profile),
        QGIS_PLUGINPATH=str(plugins),
        QT_QPA_PLATFORM="offscreen",
        HOME=str(root),  # nothing from the user's own QGIS profile leaks in
        TMPDIR=str(tmp),
    )
    env.pop("XDG_RUNTIME_DIR", None)  # as on a fresh login without a session manager
    wrapper = write_wrapper(root / "qgis_process")
    if not enable:
        return env
    enabled = subprocess.run(
        [str(wrapper), "plugins", "enable", "msgfm_qgis"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert enabled.returncode == 0, enabled.stderr
    return env


def demo_inputs():
    """``scripts/demo_inputs.py`` (the demo's input rasters from the samples) as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_inputs", ROOT / "scripts/demo_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def landsat_stack(samples: Path, out_dir: Path) -> Path:
    """The six Landsat-7 bands of the land-cover sample in one raster, as ``make demo`` makes it:
    ``out_dir/landsat_stack.tif``."""
    demo_inputs().landsat_stack(samples, out_dir)
    return out_dir / "landsat_stack.tif"
