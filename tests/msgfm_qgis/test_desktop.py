"""The built plugin in a real QGIS desktop window under Xvfb: install, run, load, look.

The zip is installed into an isolated profile, QGIS starts with ``--code desktop_startup.py``, and
that script reports what it saw as JSON and saves a screenshot of the main window. With
``MSGFM_UPDATE_SCREENSHOTS=1`` the screenshot replaces ``docs/img/desktop-run.png``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

import build

ROOT = Path(__file__).resolve().parents[2]
STARTUP = Path(__file__).with_name("desktop_startup.py")
DOCS_SCREENSHOT = ROOT / "docs" / "img" / "desktop-run.png"
QGIS = Path("/usr/bin/qgis")
XVFB = shutil.which("Xvfb")
TIMEOUT_S = 55

pytestmark = pytest.mark.skipif(
    XVFB is None or not QGIS.exists(), reason="needs Xvfb and the QGIS desktop (make setup)"
)


def free_display() -> int:
    for number in range(91, 140):
        if (
            not Path(f"/tmp/.X{number}-lock").exists()
            and not Path(f"/tmp/.X11-unix/X{number}").exists()
        ):
            return number
    raise RuntimeError("no free X display number between :91 and :139")


def start_xvfb(number: int) -> subprocess.Popen:
    xvfb = subprocess.Popen(
        [XVFB, f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if xvfb.poll() is not None or time.monotonic() > deadline:
            stop(xvfb)
            raise RuntimeError(f"Xvfb :{number} did not start")
        time.sleep(0.1)
    return xvfb


def stop(process: subprocess.Popen) -> None:
    """End a process group started here: TERM, then KILL after a few seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(5)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def install_plugin(root: Path, models: Optional[Path] = None) -> dict:
    """The zip unpacked into a plugin folder, enabled in an empty profile; returns the env.

    ``models``: the zip's bundled models (the tests' own, tests/bundled_models.py, for a test
    that runs one; None: this checkout's, which the acceptance gate may empty).
    """
    plugins, profile = root / "plugins", root / "profile"
    plugins.mkdir()
    with zipfile.ZipFile(build.build(root / "dist", models=models)) as archive:
        archive.extractall(plugins)
    ini = profile / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[PythonPlugins]\nmsgfm_qgis=true\nprocessing=true\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QGIS_", "PYTHON", "QT_"))}
    site_packages = [
        p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix)
    ]
    env.update(
        QGIS_CUSTOM_CONFIG_PATH=str(profile),
        QGIS_PLUGINPATH=str(plugins),
        # QGIS's embedded Python does not see the venv (onnxruntime): the wrapper's fix.
        PYTHONPATH=os.pathsep.join(site_packages),
        HOME=str(root),
    )
    return env


def run_desktop(env: dict, script: Path, cwd: Path, timeout_s: float = TIMEOUT_S) -> str:
    """Start QGIS under a fresh Xvfb display with ``--code script``; returns its output."""
    number = free_display()
    env = {**env, "DISPLAY": f":{number}"}
    xvfb = start_xvfb(number)
    qgis = None
    try:
        qgis = subprocess.Popen(
            [str(QGIS), "--nologo", "--noversioncheck", "--code", str(script)],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            output, _ = qgis.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stop(qgis)
            output, _ = qgis.communicate()
            pytest.fail(f"QGIS did not finish in {timeout_s} s: {output.decode()[-2000:]}")
    finally:
        if qgis is not None:
            stop(qgis)
        stop(xvfb)
    return output.decode(errors="replace")[-3000:]


def desktop_report(env: dict, script: Path, tmp_path: Path, config: dict) -> dict:
    """Run ``script`` in QGIS with ``config`` (it names the report file); returns the report."""
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    env = {**env, "MSGFM_DESKTOP_CONFIG": str(tmp_path / "config.json")}
    log = run_desktop(env, script, tmp_path)
    report_path = Path(config["report"])
    assert report_path.exists(), f"the startup script wrote no report; QGIS output: {log}"
    report = json.loads(report_path.read_text())
    assert "errors" not in report, report["errors"]
    report["qgis_output"] = log
    return report


def test_segmentation_in_the_qgis_desktop(probability_model, sample_data, tmp_path):
    env = install_plugin(tmp_path)
    report_path, screenshot = tmp_path / "report.json", tmp_path / "screenshot.png"
    config = {
        "report": str(report_path),
        "screenshot": str(screenshot),
        "raster": str(sample_data / "sar_rgb" / "rgb_unmasked.tif"),
        "model": str(probability_model),
        "output": str(tmp_path / "land_cover.tif"),
        "probabilities": str(tmp_path / "land_cover_probabilities.tif"),
    }
    report = desktop_report(env, STARTUP, tmp_path, config)
    log = report["qgis_output"]
    assert report["provider"] == "msGFM"
    assert {"msgfm:segmentlandcover", "msgfm:pretrain", "msgfm:modelinfo"} <= set(
        report["algorithms"]
    )
    # The plugin runs from the installed zip, not from this checkout.
    assert report["backend_file"].startswith(
        str(tmp_path / "plugins" / "msgfm_qgis" / "lib" / "backend")
    )
    assert report["result"]["OUTPUT"] == config["output"]
    assert report["layer_valid"] and report["renderer"] == "paletted"
    assert [c[1] for c in report["classes"]] == ["class 0", "class 1", "class 2"]
    # The class map on top, its probabilities hidden under it, the input below; each named after
    # the input and the algorithm.
    run = "\u2014 SpaceNet-6 RGB (Segment land cover)"
    assert report["layer_tree"] == [
        [f"Land cover {run}", True],
        [f"Probabilities {run}", False],
        ["SpaceNet-6 RGB", True],
    ]
    assert report["canvas_layers"] == [f"Land cover {run}", "SpaceNet-6 RGB"]
    # The run's warning (the second layer is not used) is told again when the run ends.
    warnings = json.loads(report["result"]["WARNINGS"])
    assert len(warnings) == 1 and "is not used" in warnings[0], warnings
    assert ["msGFM", "Segment land cover finished with 1 warning"] in report["message_bar"]
    assert report["toolbox_found"] and report["toolbox_visible"]
    # The worker's Python inside QGIS is the interpreter QGIS embeds (in its exec_prefix), not the
    # Python that the embedded interpreter guessed from PATH (here a pyenv shim).
    executable, exec_prefix = report["python"][0], report["python"][1]
    assert Path(report["worker_python"]).parent == Path(exec_prefix) / "bin", executable

    assert report["screenshot_saved"], log
    from qgis.PyQt.QtGui import QImage

    image = QImage(str(screenshot))
    assert (image.width(), image.height()) == tuple(report["screenshot_size"])
    assert image.width() >= 800 and image.height() >= 500
    pixels = image.convertToFormat(QImage.Format_RGB32)
    buffer = pixels.constBits()
    buffer.setsize(pixels.sizeInBytes())
    rgb = np.frombuffer(buffer, np.uint8).reshape(pixels.height(), pixels.bytesPerLine())
    assert rgb.std() > 20  # not blank: window chrome, panels and a map
    assert len(np.unique(rgb[:, : pixels.width() * 4 : 4])) > 50
    if os.environ.get("MSGFM_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        # 256 colours: window chrome and a class map need no more, and the file stays small.
        assert image.convertToFormat(QImage.Format_Indexed8).save(str(DOCS_SCREENSHOT), "PNG")


DEPENDENCIES_SCRIPT = Path(__file__).with_name("desktop_dependencies.py")
DOCS_INSTALL_SCREENSHOT = ROOT / "docs" / "img" / "qgis-desktop-install-onnxruntime.png"


def test_missing_onnxruntime_is_offered_at_load(tmp_path):
    env = install_plugin(tmp_path)
    # QGIS's own Python without the venv: no onnxruntime (Debian's Python has none).
    env.pop("PYTHONPATH")
    report_path, screenshot = tmp_path / "report.json", tmp_path / "screenshot.png"
    config = {"report": str(report_path), "screenshot": str(screenshot)}
    report = desktop_report(env, DEPENDENCIES_SCRIPT, tmp_path, config)
    if report["onnxruntime_importable"]:
        pytest.skip("this QGIS's own Python has onnxruntime: nothing to offer")
    [offer] = [item for item in report["message_bar"] if item["title"] == "msGFM"]
    assert "ONNX Runtime is missing" in offer["text"]
    [(label, command)] = offer["buttons"]
    assert label == "Install ONNX Runtime"
    # The command runs QGIS's own interpreter (not a shim from PATH) and keeps numpy as it is.
    python = command.split()[0]
    assert Path(python).parent == Path(report["python"][1]) / "bin", command
    assert " -m pip install " in command and " onnxruntime numpy==" in command
    assert report["screenshot_saved"]
    if os.environ.get("MSGFM_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(screenshot, DOCS_INSTALL_SCREENSHOT)


CANCEL_SCRIPT = Path(__file__).with_name("desktop_cancel.py")
DOCS_CANCEL_SCREENSHOT = ROOT / "docs" / "img" / "qgis-desktop-cancel.png"


@pytest.mark.parametrize("backend", [0, 1], ids=["in-process", "subprocess"])
def test_cancel_in_the_dialog_keeps_qgis_responsive(
    sample_data, owned_bundled_models, tmp_path, backend
):
    from osgeo import gdal

    stack = tmp_path / "landsat_stack.vrt"
    bands = [str(sample_data / f"landcover/lsat7_2000_{b}.tif") for b in (10, 20, 30, 40, 50, 70)]
    gdal.BuildVRT(str(stack), bands, options=gdal.BuildVRTOptions(separate=True))
    env = install_plugin(tmp_path, owned_bundled_models)
    report_path, screenshot = tmp_path / "report.json", tmp_path / "dialog.png"
    config = {
        "report": str(report_path),
        "screenshot": str(screenshot),
        "raster": str(stack),
        "output": str(tmp_path / "land_cover.tif"),
        "backend": backend,
    }
    report = desktop_report(env, CANCEL_SCRIPT, tmp_path, config)
    assert report["cancel_s"] < 1.0, report
    # From the click on Cancel to the end the window never froze. (Before it, opening the model in
    # ONNX Runtime on the run's thread holds Python's lock for a few tenths of a second.)
    assert report["stall_after_cancel_s"] < 0.5, report
    assert not report["output_exists"]
    lines = report["log"].splitlines()
    assert any("cancelled" in line.lower() for line in lines), report["log"]
    # Progress is logged every 10 %, not once per batch.
    assert sum("tiles (" in line for line in lines) <= 3, report["log"]
    assert report["screenshot_saved"]
    if os.environ.get("MSGFM_UPDATE_SCREENSHOTS") == "1" and backend == 0:
        shutil.copyfile(screenshot, DOCS_CANCEL_SCREENSHOT)
