"""Render the demo's inputs beside its outputs into one PNG (``demo_output/contact_sheet.png``).

Each row is one task: its input(s) and the output the plugin wrote, rendered by QGIS itself (class
rasters with their colour tables and a legend of their class names, reflectance in true colour with a
2-98 % stretch, embeddings as the plugin previews them: their first three principal components).
Each picture keeps its raster's aspect ratio, so no cell is padded with blank space.

Nothing is written beside the rasters it reads: GDAL's .aux.xml sidecars are off in this process
(it only reads them, and writes one PNG).

Usage: python scripts/contact_sheet.py SAMPLES_DIR DEMO_OUTPUT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List, Tuple

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

os.environ["GDAL_PAM_ENABLED"] = "NO"  # read-only: no histogram sidecars beside the inputs

from qgis.core import (
    QgsApplication,
    QgsContrastEnhancement,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QRect, QSize, Qt
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter

CELL = 256  # the height of every picture; widths follow the rasters' aspect ratios
LABEL = 22
LEGEND_WIDTH = 150


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


def render(path: Path, bands=None) -> Tuple[QImage, List[Tuple[QColor, str]]]:
    """The raster at height ``CELL`` in its aspect ratio, and its legend (class rasters: colours
    and names from the file's colour table and category names; others: none)."""
    layer = QgsRasterLayer(str(path), path.stem)
    if not layer.isValid():
        raise SystemExit(f"contact sheet: cannot open {path}")
    if bands:
        true_colour(layer, *bands)
    legend = []
    if isinstance(layer.renderer(), QgsPalettedRasterRenderer):
        names = _category_names(path)
        for item in layer.renderer().classes():
            name = names.get(item.value) or item.label or str(item.value)
            legend.append((item.color, f"{item.value} {name}" if name != str(item.value) else name))
    extent = layer.extent()
    width = max(CELL // 2, min(3 * CELL, round(CELL * extent.width() / extent.height())))
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(width, CELL))
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    del layer
    return image, legend


def _category_names(path: Path) -> Dict[int, str]:
    from osgeo import gdal

    dataset = gdal.Open(str(path))
    names = dataset.GetRasterBand(1).GetCategoryNames() or []
    dataset = None
    return {value: name for value, name in enumerate(names) if name}


def draw_legend(painter: QPainter, left: int, top: int, legend: List[Tuple[QColor, str]]) -> None:
    """Colour swatches and class names, one per line, from ``(left, top)`` down."""
    line = min(18, CELL // max(1, len(legend)))
    for index, (color, name) in enumerate(legend):
        y = top + 4 + index * line
        painter.fillRect(QRect(left + 4, y + 2, line - 4, line - 4), color)
        painter.drawText(left + line + 4, y, LEGEND_WIDTH - line - 4, line, Qt.AlignVCenter, name)


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
        ("Pan-sharpening (SpaceNet-6)", [(inputs / "pan1.tif", None, "PAN 0.5 m"),
                                         (inputs / "ms_2m.tif", (3, 2, 1), "MS 2 m"),
                                         (out / "pansharpened.tif", (3, 2, 1), "pansharpen")]),
        ("Embeddings (principal components 1-3)", [(inputs / "s2_clear.tif", (4, 3, 2), "S2"),
                                                    (out / "embeddings_preview.tif", (1, 2, 3), "extractembeddings (PREVIEW)")]),
        ("Classify with examples (S2 L1C, 60 points)", [(inputs / "s2_l1c/s2_l1c_12bands.tif", (4, 3, 2), "S2 4-3-2"),
                                                        (out / "cover.tif", None, "classifywithexamples")]),
        ("Detect change (pasted block)", [(inputs / "s2_l1c/s2_l1c_12bands.tif", (4, 3, 2), "before"),
                                          (inputs / "s2_l1c/s2_pasted.tif", (4, 3, 2), "after"),
                                          (out / "change.tif", None, "detectchange"),
                                          (out / "change_mask.tif", None, "change mask")]),
    ]  # fmt: skip
    rendered = [
        [(*render(path, bands), caption) for path, bands, caption in cells] for _, cells in rows
    ]
    widths = [
        sum(image.width() + (LEGEND_WIDTH if legend else 0) for image, legend, _ in cells)
        for cells in rendered
    ]
    sheet = QImage(max(widths), len(rows) * (CELL + 2 * LABEL), QImage.Format_RGB32)
    sheet.fill(QColor("white"))
    painter = QPainter(sheet)
    painter.setFont(QFont("DejaVu Sans", 10))
    painter.setPen(QColor("black"))
    for r, ((title, _), cells) in enumerate(zip(rows, rendered)):
        top = r * (CELL + 2 * LABEL)
        painter.drawText(4, top + LABEL - 6, title)
        left = 0
        for image, legend, caption in cells:
            painter.drawImage(left, top + LABEL, image)
            painter.drawText(
                left, top + LABEL + CELL, image.width(), LABEL, Qt.AlignCenter, caption
            )
            left += image.width()
            if legend:
                draw_legend(painter, left, top + LABEL, legend)
                left += LEGEND_WIDTH
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
