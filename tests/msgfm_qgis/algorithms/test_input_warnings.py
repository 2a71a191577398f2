"""What the plugin says about doubtful input, and where an ungeoreferenced result lies in QGIS."""

from __future__ import annotations

import json
import time

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsRasterLayer,
)

ALG = "msgfm:segmentlandcover"


class RecordingFeedback(QgsProcessingFeedback):
    """A feedback that keeps the warnings it is given."""

    def __init__(self):
        super().__init__()
        self.warnings = []

    def pushWarning(self, warning):
        self.warnings.append(warning)
        super().pushWarning(warning)


def ungeoreferenced_png(sample_data, folder):
    """A real RGB photo as PNG: no CRS, no geotransform (the engine warns about it)."""
    from osgeo import gdal

    png = folder / "photo.png"
    gdal.Translate(str(png), str(sample_data / "rgb/rmnp-rgb.tif"), format="PNG")
    (folder / "photo.png.aux.xml").unlink(missing_ok=True)
    return png


def test_ungeoreferenced_png_output_lies_on_its_input_in_qgis(
    run_algorithm, probability_model, sample_data, tmp_path
):
    png = ungeoreferenced_png(sample_data, tmp_path)
    out = tmp_path / "landcover.tif"
    feedback = RecordingFeedback()
    results = run_algorithm(
        ALG,
        {"INPUT": str(png), "MODEL": str(probability_model), "OUTPUT": str(out)},
        context=QgsProcessingContext(),
        feedback=feedback,
    )
    source, result = QgsRasterLayer(str(png), "in"), QgsRasterLayer(str(out), "out")
    assert source.isValid() and result.isValid()
    assert result.extent() == source.extent()  # y from -height to 0, as QGIS shows the PNG
    assert source.extent().yMaximum() == 0 and source.extent().yMinimum() == -source.height()
    assert any("has no georeferencing" in w for w in feedback.warnings), feedback.warnings
    # Every warning of the run is also an output (qgis_process --json shows it), in order.
    assert json.loads(results["WARNINGS"]) == feedback.warnings


def test_a_run_with_warnings_says_so_in_the_message_bar_when_it_ends(
    msgfm_provider, probability_model, sample_data, tmp_path
):
    """As the dialog runs it: a background task; the message bar item appears on the main thread."""
    from qgis.gui import QgsMessageBar
    from qgis.PyQt.QtWidgets import QPushButton

    from msgfm_qgis import run_warnings

    bar = QgsMessageBar()

    class Desktop:  # the part of QGIS's iface the plugin uses here
        def messageBar(self):
            return bar

    png = ungeoreferenced_png(sample_data, tmp_path)
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(ALG)
    context, feedback = QgsProcessingContext(), RecordingFeedback()
    parameters = {
        "INPUT": str(png),
        "MODEL": str(probability_model),
        "OUTPUT": str(tmp_path / "classes.tif"),
    }
    task = QgsProcessingAlgRunnerTask(algorithm, parameters, context, feedback)
    ended = []
    task.executed.connect(lambda ok, results: ended.append((ok, results)))
    run_warnings.install(Desktop())
    try:
        QgsApplication.taskManager().addTask(task)
        deadline = time.monotonic() + 120
        while not ended and time.monotonic() < deadline:
            QgsApplication.processEvents()
            time.sleep(0.01)
        QgsApplication.processEvents()
    finally:
        run_warnings.uninstall()
    [(ok, results)] = ended
    assert ok, results
    warnings = json.loads(results["WARNINGS"])
    assert warnings and warnings == feedback.warnings
    item = bar.currentItem()
    assert item is not None, "no message bar item after the run"
    assert item.title() == "msGFM"
    count = len(warnings)
    assert item.text() == f"Segment land cover finished with {count} warning{'s' * (count > 1)}"
    button = next(b for b in item.findChildren(QPushButton) if b.text() == "Show warnings")
    button.click()
    listed = button.box.informativeText()
    assert all(warning in listed for warning in warnings)
    button.box.close()
