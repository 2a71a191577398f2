"""Run inside the QGIS desktop (``qgis --code desktop_cancel.py``) by ``test_desktop.py``.

Opens msGFM's Segment land cover dialog as a user does, presses Run, presses Cancel once the run is
under way, and reports how long QGIS's main thread went without turning its event loop (a frozen
window), how long the cancel took, and what the dialog's log holds. Then screenshots the dialog.
"""

import json
import os
import time
import traceback

from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QTextEdit
from qgis.utils import iface

with open(os.environ["MSGFM_DESKTOP_CONFIG"], encoding="utf-8") as config_file:
    CONFIG = json.load(config_file)
REPORT = {"started": True, "stall_s": 0.0}
STATE = {"last": None, "cancelled_at": None, "dialog": None, "started_at": None}


def finish():
    with open(CONFIG["report"] + ".part", "w", encoding="utf-8") as report_file:
        json.dump(REPORT, report_file, indent=2, default=str)
    os.replace(CONFIG["report"] + ".part", CONFIG["report"])
    QgsProject.instance().setDirty(False)
    os._exit(0)


def guarded(function):
    def run():
        try:
            function()
        except Exception:
            REPORT["errors"] = traceback.format_exc()
            finish()

    return run


@guarded
def heartbeat():
    now = time.monotonic()
    if STATE["last"] is not None and STATE["started_at"] is not None:
        gap = now - STATE["last"]
        phase = "after_cancel" if STATE["cancelled_at"] is not None else "running"
        key = f"stall_{phase}_s"
        if gap > REPORT.get(key, 0.0):
            REPORT[key] = gap
            REPORT[f"stall_{phase}_at_s"] = now - STATE["started_at"]
        REPORT["stall_s"] = max(REPORT["stall_s"], gap)
    STATE["last"] = now
    dialog = STATE["dialog"]
    if dialog is None or STATE["started_at"] is None:
        return
    feedback = getattr(dialog, "feedback", None)
    if STATE["cancelled_at"] is None and feedback is not None and feedback.progress() >= 5:
        REPORT["progress_at_cancel"] = feedback.progress()
        STATE["cancelled_at"] = time.monotonic()
        dialog.cancelButton().click()  # the user presses Cancel
    elif STATE["cancelled_at"] is not None and getattr(dialog, "feedback", None) is None:
        REPORT["cancel_s"] = time.monotonic() - STATE["cancelled_at"]
        logs = [
            w.toPlainText() for w in dialog.findChildren(QTextEdit) if w.objectName() == "txtLog"
        ]
        REPORT["log"] = logs[0] if logs else ""
        REPORT["output_exists"] = os.path.exists(CONFIG["output"])
        dialog.showLog()
        image = dialog.grab()
        REPORT["screenshot_saved"] = image.save(CONFIG["screenshot"], "PNG")
        finish()
    elif time.monotonic() - STATE["started_at"] > 120:
        REPORT["errors"] = "the run neither reached 5 % nor ended in 120 s"
        finish()


@guarded
def open_and_run():
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    algorithm = QgsApplication.processingRegistry().createAlgorithmById("msgfm:segmentlandcover")
    dialog = AlgorithmDialog(algorithm, False, iface.mainWindow())
    dialog.setParameters(
        {
            "INPUT": CONFIG["raster"],
            "OUTPUT": CONFIG["output"],
            "OVERLAP": 0.75,
            "BATCH_SIZE": 1,
            "BACKEND": CONFIG["backend"],
        }
    )
    dialog.show()
    STATE["dialog"] = dialog
    STATE["started_at"] = time.monotonic()
    dialog.runAlgorithm()  # what the Run button does


TIMER = QTimer()
TIMER.timeout.connect(heartbeat)
TIMER.start(10)
QTimer.singleShot(int(CONFIG.get("start_delay_ms", 2000)), open_and_run)
