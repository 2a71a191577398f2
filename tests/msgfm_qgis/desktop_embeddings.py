"""Run inside the QGIS desktop (``qgis --code desktop_embeddings.py``) by ``test_desktop_embeddings.py``.

It reads its settings from the JSON file named by ``MSGFM_DESKTOP_CONFIG``, runs the Embeddings
algorithms on the real Sentinel-2 L1C scene with ``processing.runAndLoadResults`` (as the Processing
dialog does, so the styles the algorithms set are applied), then shows each output over the scene in
turn and saves a screenshot of the main window for each. Every step records what it saw in a JSON
report; an exception is reported, not raised.
"""

import json
import os
import traceback

from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface

with open(os.environ["MSGFM_DESKTOP_CONFIG"], encoding="utf-8") as config_file:
    CONFIG = json.load(config_file)
REPORT = {"started": True, "outputs": {}}
SHOWN = []  # (name, layer) of the outputs, in screenshot order


def write_report():
    with open(CONFIG["report"] + ".part", "w", encoding="utf-8") as report_file:
        json.dump(REPORT, report_file, indent=2, default=str)
    os.replace(CONFIG["report"] + ".part", CONFIG["report"])


def run_all():
    import processing

    project = QgsProject.instance()
    scene = QgsRasterLayer(CONFIG["scene"], "Sentinel-2 L1C (input)")
    project.addMapLayer(scene)
    for name, algorithm, parameters in CONFIG["runs"]:
        try:
            result = processing.runAndLoadResults(algorithm, parameters)
        except Exception:
            REPORT.setdefault("errors", {})[name] = traceback.format_exc()
            continue
        loaded = [x for x in project.mapLayers().values() if x.source() == result["OUTPUT"]]
        renderer = loaded[0].renderer() if loaded else None
        REPORT["outputs"][name] = {
            "loaded": len(loaded),
            "renderer": renderer.type() if renderer else None,
        }
        if loaded:
            SHOWN.append((name, loaded[0]))
    root = project.layerTreeRoot()
    node = root.findLayer(scene.id())
    root.insertChildNode(-1, node.clone())  # the input at the bottom of the layer tree
    root.removeChildNode(node)
    window = iface.mainWindow()
    window.showMaximized()
    window.resize(1280, 800)  # no window manager under Xvfb: maximising alone may not resize


def show(index):
    """Only output ``index`` (and the input) visible, the canvas on its extent."""
    root = QgsProject.instance().layerTreeRoot()
    for k, (_, layer) in enumerate(SHOWN):
        root.findLayer(layer.id()).setItemVisibilityChecked(k == index)
    canvas = iface.mapCanvas()
    canvas.setExtent(SHOWN[index][1].extent())
    canvas.refresh()


def shoot(index):
    name = SHOWN[index][0]
    image = iface.mainWindow().grab()
    path = os.path.join(CONFIG["screenshots"], f"{name}.png")
    REPORT["outputs"][name]["screenshot"] = path if image.save(path, "PNG") else None
    REPORT["outputs"][name]["screenshot_size"] = [image.width(), image.height()]


def next_screenshot(index=0):
    if index >= len(SHOWN):
        write_report()
        QgsProject.instance().setDirty(False)
        os._exit(0)

    def again():
        try:
            show(index)  # once more: the canvas may have been resized since
        except Exception:
            REPORT.setdefault("errors", {})[f"show {index}"] = traceback.format_exc()
        QTimer.singleShot(int(CONFIG.get("render_delay_ms", 3000)), after_render)

    def after_render():
        try:
            shoot(index)
        except Exception:
            REPORT.setdefault("errors", {})[f"shoot {index}"] = traceback.format_exc()
        next_screenshot(index + 1)

    try:
        show(index)
    except Exception:
        REPORT.setdefault("errors", {})[f"show {index}"] = traceback.format_exc()
    QTimer.singleShot(500, again)


def start():
    try:
        run_all()
    except Exception:
        REPORT.setdefault("errors", {})["run_all"] = traceback.format_exc()
    write_report()
    next_screenshot()


QTimer.singleShot(int(CONFIG.get("start_delay_ms", 1500)), start)
