"""What the plugin says about doubtful input, and where an ungeoreferenced result lies in QGIS."""

from __future__ import annotations

from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsRasterLayer

ALG = "msgfm:segmentlandcover"


class RecordingFeedback(QgsProcessingFeedback):
    """A feedback that keeps the warnings it is given."""

    def __init__(self):
        super().__init__()
        self.warnings = []

    def pushWarning(self, warning):
        self.warnings.append(warning)
        super().pushWarning(warning)


def test_ungeoreferenced_png_output_lies_on_its_input_in_qgis(
    run_algorithm, probability_model, sample_data, tmp_path
):
    from osgeo import gdal

    png = tmp_path / "photo.png"
    gdal.Translate(str(png), str(sample_data / "rgb/rmnp-rgb.tif"), format="PNG")
    (tmp_path / "photo.png.aux.xml").unlink(missing_ok=True)
    out = tmp_path / "landcover.tif"
    feedback = RecordingFeedback()
    run_algorithm(
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
