"""Run inside the QGIS desktop (``qgis --code desktop_dependencies.py``) by ``test_desktop.py``.

QGIS starts without ONNX Runtime in its Python. The script reports what the msGFM plugin put in the
message bar at load (text, button, the command the button runs), opens the Toolbox on the msGFM
algorithms, saves a screenshot of the main window and ends QGIS.
"""

import json
import os
import traceback

from qgis.core import QgsProject
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QDockWidget, QLabel, QPushButton
from qgis.utils import iface

with open(os.environ["MSGFM_DESKTOP_CONFIG"], encoding="utf-8") as config_file:
    CONFIG = json.load(config_file)
REPORT = {"started": True}


def report_and_quit():
    try:
        import importlib.util
        import sys

        REPORT["onnxruntime_importable"] = importlib.util.find_spec("onnxruntime") is not None
        REPORT["python"] = [sys.executable, sys.exec_prefix]
        window = iface.mainWindow()
        window.resize(1280, 800)
        toolbox = window.findChild(QDockWidget, "ProcessingToolbox")
        if toolbox is not None:
            toolbox.setVisible(True)
            search = getattr(toolbox, "searchBox", None)
            if search is not None:
                search.setText("msgfm")
        items = []
        for item in iface.messageBar().items():
            labels = [label.text() for label in item.findChildren(QLabel)]
            buttons = [(b.text(), b.toolTip()) for b in item.findChildren(QPushButton)]
            items.append(
                {"title": item.title(), "text": item.text(), "labels": labels, "buttons": buttons}
            )
        REPORT["message_bar"] = items
        image = window.grab()
        REPORT["screenshot_saved"] = image.save(CONFIG["screenshot"], "PNG")
        REPORT["screenshot_size"] = [image.width(), image.height()]
    except Exception:
        REPORT["errors"] = traceback.format_exc()
    with open(CONFIG["report"] + ".part", "w", encoding="utf-8") as report_file:
        json.dump(REPORT, report_file, indent=2, default=str)
    os.replace(CONFIG["report"] + ".part", CONFIG["report"])
    QgsProject.instance().setDirty(False)
    os._exit(0)


QTimer.singleShot(int(CONFIG.get("screenshot_delay_ms", 4000)), report_and_quit)
