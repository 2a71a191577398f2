"""msgfm:classifywithexamples — a class map from a few labelled points or polygons."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Dict

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
)

from .base import integer_parameter, optional_output
from .embeddings_base import EmbeddingToolAlgorithm
from .inference_base import advanced

METHODS = ("auto", "logistic", "knn")
METHOD_LABELS = (
    "Automatic (the best of both by cross-validation)",
    "Logistic regression (L2-regularised)",
    "k nearest neighbours",
)


class ClassifyWithExamplesAlgorithm(EmbeddingToolAlgorithm):
    NAME = "classifywithexamples"
    DISPLAY_NAME = "Classify with examples"
    EXAMPLES = "EXAMPLES"
    CLASS_FIELD = "CLASS_FIELD"
    METHOD = "METHOD"
    OUTPUT_CLASSIFIER = "OUTPUT_CLASSIFIER"
    PIXEL_BANDS = "PIXEL_BANDS"
    PIXELS_PER_EXAMPLE = "PIXELS_PER_EXAMPLE"
    ACCURACY = "ACCURACY"
    BALANCED_ACCURACY = "BALANCED_ACCURACY"
    CLASS_COUNTS = "CLASS_COUNTS"
    CHOSEN_METHOD = "CHOSEN_METHOD"
    HELP = (
        "Maps your own classes from a few labelled examples: the msGFM encoder describes every "
        "place of the image, and a small classifier learns your classes from those descriptions "
        "at your points or polygons. No training run, no GPU: a few dozen examples are often "
        "enough.\n\n"
        "<b>Input raster layer</b> and <b>Bands</b>: an image of a sensor msGFM knows (Sentinel-2, "
        "SAR, RGB, elevation); the bundled embedding model for its sensor is chosen from its bands "
        "(or choose the sensor under Advanced, or a model).\n"
        "<b>Labelled examples</b>: points or polygons over the image; <b>Class field</b>: their "
        "class, as text (names) or integers (codes, kept in the map when 0-254). Polygons "
        "contribute up to 'Pixels per example' of their pixels. Examples outside the image or on "
        "nodata are reported and left out.\n"
        "<b>Classifier</b>: logistic regression (L2-regularised) or k nearest neighbours; "
        "automatic picks the one (and its setting) with the best cross-validated balanced "
        "accuracy. Classes are balanced: a class with few examples weighs as much as one with "
        "many.\n\n"
        "<b>Classes</b>: a class raster at the input's resolution, coloured and named.\n"
        "<b>Class probabilities</b> (optional): one band per class.\n"
        "<b>Classifier file</b> (optional): save the classifier to map other scenes with msGFM > "
        "Apply classifier.\n\n"
        "The log and the results give the cross-validated accuracy (held-out examples: all pixels "
        "of an example are held out together) and the examples and pixels per class.\n\n"
        "<b>Resolution</b>: the encoder describes cells of its stride (32 x 32 pixels for the bundled "
        "models); each pixel's description "
        "is the cells' embeddings interpolated at the pixel plus the pixel's own bands, so the map "
        "follows field edges (turn 'Add the pixel's own bands' off to use the embeddings only)."
    )

    def initOutputs(self) -> None:
        self.add_examples(self.EXAMPLES, self.tr("Labelled examples (points or polygons)"))
        self.addParameter(
            QgsProcessingParameterField(
                self.CLASS_FIELD,
                self.tr("Class field (text or integer)"),
                parentLayerParameterName=self.EXAMPLES,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.METHOD,
                self.tr("Classifier"),
                options=[self.tr(o) for o in METHOD_LABELS],
                defaultValue=0,
            )
        )
        self.add_class_outputs()
        self.addParameter(
            optional_output(
                QgsProcessingParameterFileDestination,
                self.OUTPUT_CLASSIFIER,
                self.tr("Classifier file"),
                fileFilter="msGFM classifier (*.json)",
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterBoolean(
                    self.PIXEL_BANDS,
                    self.tr("Add the pixel's own bands to the embeddings (sharper boundaries)"),
                    defaultValue=True,
                )
            )
        )
        self.addParameter(
            advanced(
                integer_parameter(
                    self.PIXELS_PER_EXAMPLE,
                    self.tr("Pixels per example (at most, from each polygon)"),
                    400,
                    minimum=1,
                )
            )
        )
        self.add_seed()
        self.addOutput(QgsProcessingOutputNumber(self.ACCURACY, "Cross-validated accuracy"))
        self.addOutput(
            QgsProcessingOutputNumber(self.BALANCED_ACCURACY, "Cross-validated balanced accuracy")
        )
        self.addOutput(
            QgsProcessingOutputString(self.CLASS_COUNTS, "Examples and pixels per class (JSON)")
        )
        self.addOutput(QgsProcessingOutputString(self.CHOSEN_METHOD, "Classifier chosen"))

    def run_tool(self, parameters, context, feedback, staging, copies) -> Dict:
        from backend.embedtools import classifier, maps
        from backend.embedtools import classifier_file as files

        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        field = self.parameterAsString(parameters, self.CLASS_FIELD, context)
        examples = self.examples(parameters, self.EXAMPLES, field, layer.crs(), context, feedback)
        classes = files.class_infos([e.label for e in examples])
        if len(classes) < 2:  # refused before the encoder runs
            raise QgsProcessingException(
                self.tr(
                    "The examples hold only one class ('{}' in '{}'): label examples of "
                    "at least two classes"
                ).format(classes[0].name, field)
            )
        embedded, model_path, metadata = self.embed_input(
            parameters, context, feedback, staging, copies
        )
        index_of = {c.name: k for k, c in enumerate(classes)}
        seed = self.parameterAsInt(parameters, self.SEED, context)
        method = METHODS[self.parameterAsEnum(parameters, self.METHOD, context)]
        with ExitStack() as stack:
            features = self.features(
                embedded,
                metadata,
                stack,
                self.parameterAsBoolean(parameters, self.PIXEL_BANDS, context),
            )
            training = maps.training_set(
                features,
                examples,
                classes,
                lambda label: index_of[str(label)],
                self.parameterAsInt(parameters, self.PIXELS_PER_EXAMPLE, context),
                seed,
            )
            self.report_examples(training, feedback)
            training, kept = maps.keep_classes_with_pixels(training)
            if len(kept) < len(classes):
                missing = [c.name for c in classes if c not in kept]
                feedback.pushWarning(
                    f"Class(es) {', '.join(missing)} have no example on valid pixels and are "
                    "left out of the map"
                )
            classes = kept
            fitted = maps.fit_on_examples(training, method, seed, layout=features.layout)
            for line in classifier.describe_scores(fitted.scores):
                feedback.pushInfo(f"Cross-validation: {line}")
            chosen = fitted.chosen
            feedback.pushInfo(
                f"Chosen: {fitted.candidate.describe()}: cross-validated accuracy "
                f"{chosen.accuracy:.3f}, balanced accuracy {chosen.balanced_accuracy:.3f}"
            )
            results = self.write_classes(
                features, fitted.predict_proba, classes, parameters, context, feedback
            )
        classifier_path = self.parameterAsFileOutput(parameters, self.OUTPUT_CLASSIFIER, context)
        if classifier_path:
            saved = files.ClassifierFile.from_fitted(
                fitted,
                files.EncoderIdentity.of(model_path, metadata),
                classes,
                features.layout,
                {
                    "examples_per_class": training.examples_per_class,
                    "pixels_per_class": training.pixels_per_class,
                    "class_field": field,
                },
            ).save(classifier_path)
            feedback.pushInfo(f"Classifier saved to {saved}")
            results[self.OUTPUT_CLASSIFIER] = str(saved)
        counts = {
            name: {
                "examples": training.examples_per_class[name],
                "pixels": training.pixels_per_class[name],
            }
            for name in training.pixels_per_class
        }
        results.update(
            {
                self.ACCURACY: chosen.accuracy,
                self.BALANCED_ACCURACY: chosen.balanced_accuracy,
                self.CLASS_COUNTS: json.dumps(counts),
                self.CHOSEN_METHOD: fitted.candidate.describe(),
            }
        )
        return results

    @staticmethod
    def report_examples(training, feedback) -> None:
        for name in training.pixels_per_class:
            feedback.pushInfo(
                f"Class '{name}': {training.examples_per_class[name]} example(s), "
                f"{training.pixels_per_class[name]} pixel(s)"
            )
        if training.off_grid:
            feedback.pushWarning(
                f"{len(training.off_grid)} example(s) lie outside the input raster and are left "
                f"out (feature ids {', '.join(training.off_grid[:20])})"
            )
        if training.on_nodata:
            feedback.pushWarning(
                f"{len(training.on_nodata)} example(s) fall on nodata only and are left out "
                f"(feature ids {', '.join(training.on_nodata[:20])})"
            )
