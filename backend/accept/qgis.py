"""The shipped plugin zip, installed in an isolated QGIS profile and driven by ``qgis_process``.

The suite scores what a user gets: the algorithms of the built zip (not the source tree), with
the models bundled in it, run by QGIS's own command-line runner as ``make demo`` does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[2]
PLUGIN = "msgfm_qgis"


@dataclass
class Outcome:
    """One algorithm run: ``ok`` and, when not, the algorithm's own message."""

    ok: bool
    message: str = ""


def build_zip(out_dir: Path) -> Path:
    """Build the plugin zip of this source tree (``build.py``) into ``out_dir``."""
    subprocess.run(
        [sys.executable, str(REPO / "build.py"), "--out-dir", str(out_dir)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    (zip_path,) = sorted(out_dir.glob(f"{PLUGIN}-*.zip"))
    return zip_path


def qgis_process_program() -> str:
    """The ``qgis_process`` beside this Python (the venv's wrapper), else the one on PATH."""
    beside = Path(sys.executable).with_name("qgis_process")
    if beside.is_file():
        return str(beside)
    found = shutil.which("qgis_process")
    if not found:
        raise RuntimeError("qgis_process was not found: install QGIS (scripts/setup.sh)")
    return found


class InstalledPlugin:
    """The plugin zip unpacked into ``work/qgis/plugins`` with its own QGIS profile.

    Args:
        zip_path: The plugin zip.
        work: Scratch folder (emptied of an earlier install).
    """

    def __init__(self, zip_path: Path, work: Path):
        self.root = work / "qgis"
        shutil.rmtree(self.root, ignore_errors=True)
        (self.root / "plugins").mkdir(parents=True)
        (self.root / "profile").mkdir(parents=True)
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(self.root / "plugins")
        self.program = qgis_process_program()
        self.env = dict(os.environ)
        self.env.update(
            QGIS_CUSTOM_CONFIG_PATH=str(self.root / "profile"),
            QGIS_PLUGINPATH=str(self.root / "plugins"),
            QT_QPA_PLATFORM="offscreen",
        )
        self._call(["plugins", "enable", PLUGIN])

    @property
    def models_dir(self) -> Path:
        """The bundled models as installed from the zip."""
        return self.root / "plugins" / PLUGIN / "resources" / "models"

    def _call(self, arguments: List[str], timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.program, *arguments],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run(self, algorithm: str, parameters: Dict[str, object]) -> Outcome:
        """Run ``msgfm:<algorithm>``; a failure keeps the algorithm's error text."""
        arguments = ["run", f"msgfm:{algorithm}", "--"]
        arguments += [f"{key}={value}" for key, value in parameters.items() if value is not None]
        done = self._call(arguments)
        if done.returncode == 0:
            return Outcome(True)
        return Outcome(False, _error_text(done.stdout + "\n" + done.stderr))


def _error_text(output: str) -> str:
    """The algorithm's error message, without QGIS start-up noise or progress text.

    qgis_process prints each error after ``ERROR:``, sometimes on the line its progress text
    ("0...10...100 - done.") left open; what follows the marker is the message.
    """
    messages: List[str] = []
    for text in re.findall(r"ERROR:\s*(.+)", output):
        text = text.strip()
        if text and not any(text in seen or seen in text for seen in messages):
            messages.append(text)
    if not messages:
        noise = ("XDG_RUNTIME_DIR", "setapi() is deprecated", "QStandardPaths")
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        messages = [line for line in lines if not any(n in line for n in noise)][-2:]
    return " ".join(messages[-2:])[:600]
