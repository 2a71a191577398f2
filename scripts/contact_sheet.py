"""Render the demo's inputs beside its outputs into one PNG (``demo_output/contact_sheet.png``).

Each row is one task: its input(s) and the output the plugin wrote, rendered by QGIS itself (class
rasters with their colour tables, reflectance in true colour with a 2-98 % stretch).

Usage: python scripts/contact_sheet.py SAMPLES_DIR DEMO_OUTPUT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (
    QgsApplication,
    QgsContrastEnhancement,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsMultiBandColorRenderer,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QSize, Qt
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter

CELL = 256
LABEL = 22


def true_colour(layer: QgsRasterLayer, red: int, green: int, blue: int) -> None:
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), red, green, blue)
    layer.setRenderer(renderer)
    for band, setter in ((red, renderer.setRedContrastEnhancement),
                         (green, renderer.setGreenContrastEnhancement),
                         (blue, renderer.setBlueContrastEnhancement)):  # fmt: skip
        stats = layer.dataProvider().cumulativeCut(band, 0.02, 0.98)
        enhancement = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
        enhancement.setMinimumValue(stats[0])
        enhancement.setMaximumValue(stats[1])
        setter(enhancement)


def render(path: Path, bands=None) -> QImage:
    layer = QgsRasterLayer(str(path), path.stem)
    if not layer.isValid():
        raise SystemExit(f"contact sheet: cannot open {path}")
    if bands:
        true_colour(layer, *bands)
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(CELL, CELL))
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    del layer
    return image


def main(samples: Path, out: Path) -> None:
    inputs = out / "inputs"
    rows = [
        ("Land cover (Landsat-7, NC)", [(inputs / "landsat_stack.tif", (4, 3, 2), "input 4-3-2"),
                                        (out / "landcover.tif", None, "segmentlandcover")]),
        ("Scenes (32 px windows)", [(inputs / "landsat_stack.tif", (3, 2, 1), "input 3-2-1"),
                                    (out / "scenes.tif", None, "classifyscenes")]),
        ("Cloud removal (simulated clouds)", [(inputs / "s2_cloudy.tif", (4, 3, 2), "cloudy S2"),
                                              (inputs / "s1.tif", (1, 2, 1), "S1 VV/VH"),
                                              (out / "cloud_free.tif", (4, 3, 2), "removeclouds"),
                                              (inputs / "s2_clear.tif", (4, 3, 2), "clear S2 (truth)")]),
        ("Pan-sharpening (SpaceNet-6)", [(samples / "pan_ms/pan1.tif", None, "PAN 0.5 m"),
                                         (inputs / "ms_2m.tif", (3, 2, 1), "MS 2 m"),
                                         (out / "pansharpened.tif", (3, 2, 1), "pansharpen")]),
        ("Embeddings (features 1-3)", [(inputs / "s2_clear.tif", (4, 3, 2), "S2"),
                                       (out / "embeddings.tif", (1, 2, 3), "extractembeddings")]),
        ("Classify with examples (S2 L1C, 60 points)", [(inputs / "s2_l1c/s2_l1c_12bands.vrt", (4, 3, 2), "S2 4-3-2"),
                                                        (out / "cover.tif", None, "classifywithexamples")]),
        ("Detect change (pasted block)", [(inputs / "s2_l1c/s2_l1c_12bands.vrt", (4, 3, 2), "before"),
                                          (inputs / "s2_l1c/s2_pasted.tif", (4, 3, 2), "after"),
                                          (out / "change.tif", None, "detectchange"),
                                          (out / "change_mask.tif", None, "change mask")]),
    ]  # fmt: skip
    # An algorithm without a bundled model (it failed acceptance) was skipped: no row for it.
    rows = [(title, cells) for title, cells in rows if all(p.exists() for p, _, _ in cells)]
    columns = max(len(cells) for _, cells in rows)
    sheet = QImage(columns * CELL, len(rows) * (CELL + 2 * LABEL), QImage.Format_RGB32)
    sheet.fill(QColor("white"))
    painter = QPainter(sheet)
    painter.setFont(QFont("DejaVu Sans", 10))
    for r, (title, cells) in enumerate(rows):
        top = r * (CELL + 2 * LABEL)
        painter.setPen(QColor("black"))
        painter.drawText(4, top + LABEL - 6, title)
        for c, (path, bands, caption) in enumerate(cells):
            painter.drawImage(c * CELL, top + LABEL, render(path, bands))
            painter.drawText(c * CELL, top + LABEL + CELL, CELL, LABEL, Qt.AlignCenter, caption)
    painter.end()
    target = out / "contact_sheet.png"
    sheet.save(str(target))
    print(f"contact sheet: {target}")


if __name__ == "__main__":
    app = QgsApplication([], False)
    app.initQgis()
    try:
        main(Path(sys.argv[1]), Path(sys.argv[2]))
    finally:
        app.exitQgis()
