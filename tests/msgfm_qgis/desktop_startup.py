"""Run inside the QGIS desktop (``qgis --code desktop_startup.py``) by ``test_desktop.py``.

It reads its settings from the JSON file named by ``MSGFM_DESKTOP_CONFIG``, checks the installed
plugin's provider, segments a real raster through Processing, loads the result onto the map canvas,
opens the Processing Toolbox on the msGFM algorithms, takes a screenshot of the main window, writes a
JSON report and ends QGIS. Every step records what it saw; an exception is reported, not raised.
"""

import json
import os
import traceback

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import QDockWidget
from qgis.utils import iface

with open(os.environ["MSGFM_DESKTOP_CONFIG"], encoding="utf-8") as config_file:
    CONFIG = json.load(config_file)
REPORT = {"started": True}


def write_report():
    with open(CONFIG["report"] + ".part", "w", encoding="utf-8") as report_file:
        json.dump(REPORT, report_file, indent=2, default=str)
    os.replace(CONFIG["report"] + ".part", CONFIG["report"])


def check_provider():
    provider = QgsApplication.processingRegistry().providerById("msgfm")
    REPORT["provider"] = provider.name() if provider is not None else None
    REPORT["algorithms"] = sorted(a.id() for a in provider.algorithms()) if provider else []
    import sys

    import backend
    from backend.worker.interpreter import default_python

    REPORT["backend_file"] = backend.__file__

    REPORT["python"] = [sys.executable, sys.exec_prefix, sys.base_exec_prefix]
    REPORT["worker_python"] = default_python()


def segment_and_show():
    import processing

    project = QgsProject.instance()
    source = QgsRasterLayer(CONFIG["raster"], "SpaceNet-6 RGB")
    project.addMapLayer(source)
    # As the Processing dialog does: run, then load the outputs with the styles the algorithm set.
    # The input given again as an unused second sensor layer: a run that ends with a warning.
    result = processing.runAndLoadResults(
        "msgfm:segmentlandcover",
        {
            "INPUT": source.id(),
            "SECOND_INPUT": source.id(),
            "MODEL": CONFIG["model"],
            "OUTPUT": CONFIG["output"],
            "PROBABILITIES": CONFIG["probabilities"],
        },
    )
    REPORT["result"] = result
    loaded = [x for x in project.mapLayers().values() if x.source() == result["OUTPUT"]]
    REPORT["loaded_outputs"] = len(loaded)
    classes = loaded[0]
    REPORT["layer_tree"] = [
        [node.name(), node.itemVisibilityChecked()] for node in project.layerTreeRoot().children()
    ]
    REPORT["message_bar"] = [[item.title(), item.text()] for item in iface.messageBar().items()]
    renderer = classes.renderer()
    REPORT["layer_valid"] = classes.isValid()
    REPORT["renderer"] = renderer.type() if renderer else None
    REPORT["classes"] = (
        [(c.value, c.label, c.color.name()) for c in renderer.classes()]
        if renderer is not None and renderer.type() == "paletted"
        else []
    )
    canvas = iface.mapCanvas()
    canvas.setExtent(classes.extent())
    canvas.refresh()


def open_toolbox():
    window = iface.mainWindow()
    window.showMaximized()
    window.resize(1280, 800)  # no window manager under Xvfb: maximising alone may not resize
    toolbox = window.findChild(QDockWidget, "ProcessingToolbox")
    REPORT["toolbox_found"] = toolbox is not None
    if toolbox is None:
        return
    toolbox.setVisible(True)
    toolbox.raise_()
    search = getattr(toolbox, "searchBox", None)
    if search is not None:
        search.setText("msgfm")  # filters the tree to msGFM and expands its groups
    REPORT["toolbox_visible"] = toolbox.isVisible()
    layers = window.findChild(QDockWidget, "Layers")
    if layers is not None:  # wide enough to show the outputs' names whole
        window.resizeDocks([layers, toolbox], [430, 250], Qt.Horizontal)


def step(name, function):
    try:
        function()
        REPORT.setdefault("steps", []).append(name)
    except Exception:
        REPORT.setdefault("errors", {})[name] = traceback.format_exc()


def run():
    step("check_provider", check_provider)
    step("open_toolbox", open_toolbox)
    step("segment_and_show", segment_and_show)
    write_report()
    QTimer.singleShot(int(CONFIG.get("screenshot_delay_ms", 4000)), shoot_and_quit)


def shoot_and_quit():
    def shoot():
        # The canvas takes its layers from the layer tree once the event loop has run.
        REPORT["canvas_layers"] = [layer.name() for layer in iface.mapCanvas().layers()]
        image = iface.mainWindow().grab()
        REPORT["screenshot_saved"] = image.save(CONFIG["screenshot"], "PNG")
        REPORT["screenshot_size"] = [image.width(), image.height()]

    step("screenshot", shoot)
    write_report()
    QgsProject.instance().setDirty(False)
    # Leave at once: nothing else is needed from this QGIS, and its shutdown can be slow.
    os._exit(0)


QTimer.singleShot(int(CONFIG.get("start_delay_ms", 1500)), run)
