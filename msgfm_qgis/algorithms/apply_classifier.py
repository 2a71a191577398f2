"""msgfm:applyclassifier — map another scene with a classifier saved by Classify with examples."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Dict

from qgis.core import (
    QgsProcessingException,
)

from backend.files import sha256_file

from ..bundled_models import bundled_embedding_models
from ..model_checks import read_metadata
from .base import file_parameter
from .embeddings_base import EmbeddingToolAlgorithm
from .inference_base import mark_out_of_domain


class ApplyClassifierAlgorithm(EmbeddingToolAlgorithm):
    NAME = "applyclassifier"
    DISPLAY_NAME = "Apply classifier"
    CLASSIFIER = "CLASSIFIER"
    MODEL_LABEL = (
        "msGFM embedding model (.onnx; empty: the bundled model the classifier was fitted with)"
    )
    HELP = (
        "Maps a scene with a classifier saved by msGFM > Classify with examples: one set of "
        "labels maps a whole batch of scenes (right-click > Execute as Batch Process).\n\n"
        "<b>Input raster layer</b> and <b>Bands</b>: a scene of the same sensor as the one the "
        "classifier was fitted on, bands in the same order.\n"
        "<b>Classifier file</b>: the .json file saved as 'Classifier file'. It records the "
        "features it was fitted on. With encoder features, it records the embedding model it "
        "needs (name, version, file checksum, sensor, bands); another model is refused, a "
        "re-exported file of the same model is used with a warning. On the pixel's bands only, "
        "it records the sensor, bands and their normalisation, and no encoder runs and no model "
        "file is needed.\n"
        "<b>msGFM embedding model</b>: empty uses the bundled model the classifier names (none "
        "for a classifier on the bands only); when it is not bundled, the run stops before any "
        "work: choose that model's .onnx file.\n\n"
        "<b>Classes</b>: a class raster at the input's resolution with the classifier's class "
        "values, colours and names. <b>Class probabilities</b> (optional): one band per class.\n\n"
        "A classifier learned on one date or region may do worse elsewhere (other season, other "
        "crops): check the map, and add examples from the new scenes when it errs."
    )

    def initAlgorithm(self, config=None):
        super().initAlgorithm(config)
        self.removeParameter(self.SENSOR)  # the classifier names its sensor

    def initOutputs(self) -> None:
        self.addParameter(
            file_parameter(
                self.CLASSIFIER,
                self.tr("Classifier file (.json from Classify with examples)"),
                extension="json",
            )
        )
        self.add_class_outputs()

    def classifier_model(self, parameters, context, saved, feedback):
        """The chosen model, else the bundled embedding model the classifier was fitted with."""
        chosen = self.parameterAsFile(parameters, self.MODEL, context)
        if chosen:
            return chosen, read_metadata(chosen)
        models = bundled_embedding_models()
        encoder = saved.encoder
        for model in models:
            if sha256_file(model.path) == encoder.sha256:
                return str(model.path), model.metadata
        for model in models:
            if model.metadata.model_name == encoder.model_name:
                return str(model.path), model.metadata
        raise QgsProcessingException(
            self.tr(
                "The classifier needs the embedding model {}, which is not among the "
                "bundled models: choose that .onnx file in 'msGFM embedding model'"
            ).format(encoder.describe())
        )

    def needs_encoder(self, parameters, context) -> bool:
        from backend.embedtools import classifier_file as files

        try:
            saved = files.ClassifierFile.load(
                self.parameterAsFile(parameters, self.CLASSIFIER, context)
            )
        except files.ClassifierFileError:
            return False  # run_tool says what is wrong with the file
        return saved.needs_encoder

    def run_tool(self, parameters, context, feedback, staging, copies) -> Dict:
        from backend.embedtools import classifier_file as files

        saved = files.ClassifierFile.load(
            self.parameterAsFile(parameters, self.CLASSIFIER, context)
        )
        if not saved.needs_encoder:
            return self.run_on_bands(saved, parameters, context, feedback, copies)
        model_path, metadata = self.classifier_model(parameters, context, saved, feedback)
        for warning in saved.check_encoder(model_path, metadata):
            feedback.pushWarning(f"Classifier: {warning}")
        self.describe(saved, feedback)
        embedded, _, _ = self.embed_input(
            parameters, context, feedback, staging, copies, (model_path, metadata)
        )
        with ExitStack() as stack:
            features = self.features(embedded, metadata, stack, saved.layout.bands > 0)
            self.check_layout(features, saved)
            results = self.write_classes(
                features, saved.predictor(), saved.classes, parameters, context, feedback
            )
        return results

    def run_on_bands(self, saved, parameters, context, feedback, copies) -> Dict:
        """A classifier fitted on the pixel's bands only: the file says how to read and normalise
        them, and no encoder runs (a chosen model must read the bands the same way)."""
        metadata = saved.input_metadata()
        chosen = self.parameterAsFile(parameters, self.MODEL, context)
        if chosen:
            saved.check_input(read_metadata(chosen))
            feedback.pushInfo(
                "The classifier was fitted on the pixel's bands only: the model chosen is not run"
            )
        self.describe(saved, feedback)
        embedded, _, _ = self.read_input(
            parameters, context, feedback, copies, (chosen or None, metadata)
        )
        with ExitStack() as stack:
            features = self.features(
                embedded,
                metadata,
                stack,
                True,
                feedback,
                self.run_anyway(parameters, context),
            )
            self.check_layout(features, saved)
            results = self.write_classes(
                features, saved.predictor(), saved.classes, parameters, context, feedback
            )
        if features.out_of_domain:
            mark_out_of_domain(results, context, feedback)
        return results

    def describe(self, saved, feedback) -> None:
        feedback.pushInfo(
            f"Classifier: {saved.cross_validation.get('chosen', saved.method)} on "
            f"{saved.features} features, classes "
            f"{', '.join(f'{c.value} {c.name}' for c in saved.classes)}; cross-validated accuracy "
            f"when fitted {saved.cross_validation.get('accuracy', float('nan')):.3f}"
        )

    def check_layout(self, features, saved) -> None:
        if features.layout != saved.layout:
            raise QgsProcessingException(
                self.tr(
                    "The classifier takes {} embedding features and {} bands, the "
                    "input gives {} and {}"
                ).format(
                    saved.layout.embedding,
                    saved.layout.bands,
                    features.layout.embedding,
                    features.layout.bands,
                )
            )
