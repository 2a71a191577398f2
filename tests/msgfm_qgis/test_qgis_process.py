"""The built zip installed into an empty QGIS profile, driven through qgis_process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import build

pytestmark = pytest.mark.qgis_process

QGIS_PROCESS = Path(sys.prefix) / "bin" / "qgis_process"  # the wrapper written by scripts/setup.sh


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """The plugin zip unpacked into a plugin folder, enabled in a fresh isolated profile."""
    assert QGIS_PROCESS.exists(), "run `make setup` to create the qgis_process wrapper"
    root = tmp_path_factory.mktemp("qgis")
    plugins, profile = root / "plugins", root / "profile"
    plugins.mkdir()
    profile.mkdir()
    with zipfile.ZipFile(build.build(root / "dist")) as archive:
        archive.extractall(plugins)
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("QGIS_", "PYTHON"))
    }
    env.update(
        QGIS_CUSTOM_CONFIG_PATH=str(profile),
        QGIS_PLUGINPATH=str(plugins),
        QT_QPA_PLATFORM="offscreen",
        HOME=str(root),  # nothing from the user's own QGIS profile leaks in
    )
    # A scratch directory without the source checkout, so only the installed zip can be imported.
    cwd = root
    enable = qgis_process(["plugins", "enable", "msgfm_qgis"], env, cwd)
    assert enable.returncode == 0, enable.stderr
    return env, cwd


def qgis_process(args, env, cwd):
    return subprocess.run(
        [str(QGIS_PROCESS), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_list_shows_the_provider(installed_plugin):
    result = qgis_process(["list"], *installed_plugin)
    assert result.returncode == 0, result.stderr
    assert "msgfm:modelinfo" in result.stdout
    assert "msGFM" in result.stdout


def test_run_modelinfo_from_the_zip(installed_plugin, probability_model):
    result = qgis_process(
        ["run", "msgfm:modelinfo", "--json", "--", f"MODEL={probability_model}"], *installed_plugin
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["results"]["TASK"] == "segmentation"
    assert report["results"]["MODEL_NAME"] == "test-pixel-classifier"
    assert "Input 'rgb': sensor rgb, 3 bands (R, G, B) at 1 m" in report["log"]["info"]
    assert report["provider_details"]["is_active"]


def test_run_modelinfo_reports_a_corrupt_model(installed_plugin, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    result = qgis_process(["run", "msgfm:modelinfo", "--", f"MODEL={corrupt}"], *installed_plugin)
    assert result.returncode != 0
    assert "corrupt.onnx is not a valid ONNX model" in result.stdout + result.stderr
