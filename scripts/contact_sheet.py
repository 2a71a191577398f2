"""Render the demo's inputs beside its outputs into one PNG (``demo_output/contact_sheet.png``).

Each row is one task: its input(s) and the output the plugin wrote, rendered by QGIS itself (class
rasters with their colour tables and a legend of their class names, reflectance in true colour with a
2-98 % stretch, embeddings as the plugin previews them: their first three principal components).
Each picture keeps its raster's aspect ratio, so no cell is padded with blank space.

Nothing is written beside the rasters it reads: they are opened with GDAL's .aux.xml sidecars off
(QGIS would keep the histograms of its stretch there).

Usage: python scripts/contact_sheet.py SAMPLES_DIR DEMO_OUTPUT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List, Tuple

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

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
SHEET_WIDTH = 4 * CELL + LEGEND_WIDTH


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
    from osgeo import gdal

    gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", "NO")  # read when the file is opened
    try:
        layer = QgsRasterLayer(str(path), path.stem)
    finally:
        gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", None)
    if not layer.isValid():
        raise SystemExit(f"contact sheet: cannot open {path}")
    if bands:
        true_colour(layer, *bands)
    legend = []
    if isinstance(layer.renderer(), QgsPalettedRasterRenderer):
        # The colour table has 256 entries; the classes are the values the file names.
        names = _category_names(path)
        for item in layer.renderer().classes():
            if item.value in names:
                legend.append((item.color, f"{int(item.value)} {names[item.value]}"))
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

    # The names are in the output's .aux.xml. GDAL 3.6's Python GetCategoryNames returns None
    # when the first name is empty (value 0 is no class), gdal.Info reads them all.
    names = gdal.Info(str(path), format="json")["bands"][0].get("categories") or []
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
        ("Embeddings (principal components 1-3)", [(inputs / "s2_l1c/s2_l1c_12bands.tif", (4, 3, 2), "S2 L1C"),
                                                    (out / "embeddings_preview.tif", (1, 2, 3), "extractembeddings (PREVIEW)")]),
        ("Classify with examples (S2 L1C, 60 points, the pixel's bands)", [(inputs / "s2_l1c/s2_l1c_12bands.tif", (4, 3, 2), "S2 4-3-2"),
                                                        (out / "cover.tif", None, "classifywithexamples")]),
        ("Detect change (pasted block)", [(inputs / "s2_l1c/s2_l1c_12bands.tif", (4, 3, 2), "before"),
                                          (inputs / "s2_l1c/s2_pasted.tif", (4, 3, 2), "after"),
                                          (out / "change.tif", None, "detectchange"),
                                          (out / "change_mask.tif", None, "change mask")]),
    ]  # fmt: skip
    # An algorithm without a bundled model (it failed acceptance) was skipped: no row for it.
    # Classify with examples on the pixel's bands needs none and always has its row.
    rows = [(title, cells) for title, cells in rows if all(p.exists() for p, _, _ in cells)]
    if not rows:  # every model of the demo failed acceptance: nothing to draw
        print(
            f"contact sheet: no algorithm ran (no bundled model passed acceptance); none in {out}"
        )
        return
    rendered = [
        [(*render(path, bands), caption) for path, bands, caption in cells] for _, cells in rows
    ]
    # A row wider than the sheet (wide rasters, four pictures) is scaled down to fit it.
    widths = [
        sum(image.width() + (LEGEND_WIDTH if legend else 0) for image, legend, _ in cells)
        for cells in rendered
    ]
    scales = [min(1.0, (SHEET_WIDTH - LEGEND_WIDTH * sum(1 for _, legend, _ in cells if legend))
                  / (width - LEGEND_WIDTH * sum(1 for _, legend, _ in cells if legend)))
              for cells, width in zip(rendered, widths)]  # fmt: skip
    heights = [round(CELL * scale) + 2 * LABEL for scale in scales]
    sheet = QImage(min(SHEET_WIDTH, max(widths)), sum(heights), QImage.Format_RGB32)
    sheet.fill(QColor("white"))
    painter = QPainter(sheet)
    painter.setFont(QFont("DejaVu Sans", 10))
    painter.setPen(QColor("black"))
    top = 0
    for (title, _), cells, scale, height in zip(rows, rendered, scales, heights):
        painter.drawText(4, top + LABEL - 6, title)
        left = 0
        for image, legend, caption in cells:
            picture = image.scaledToHeight(round(CELL * scale), Qt.SmoothTransformation)
            painter.drawImage(left, top + LABEL, picture)
            painter.drawText(
                left, top + height - LABEL, picture.width(), LABEL, Qt.AlignCenter, caption
            )
            left += picture.width()
            if legend:
                draw_legend(painter, left, top + LABEL, legend)
                left += LEGEND_WIDTH
        top += height
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
