"""Shared shape of the Embeddings algorithms: the encoder runs through the engine, numpy does the rest.

Each algorithm first computes the input's embeddings with the bundled embedding model for its
sensor (or the chosen one), in QGIS or in the worker subprocess like every analysis algorithm (tiled,
blended, nodata-aware, cancellable), then builds its map from them at the input's resolution with
:mod:`backend.embedtools` (numpy only, in QGIS's own Python). A classifier on the pixel's bands only
runs no encoder and needs no model file: the sensor registry says how to read the bands.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from qgis.core import (
    QgsColorRampShader,
    QgsFeatureRequest,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingMultiStepFeedback,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterRasterDestination,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)

from ..bundled_models import bundled_embedding_models
from ..dependencies import require_onnxruntime
from ..layers import raster_file
from ..model_checks import (
    check_task,
    choose_bands,
    layer_facts,
    no_embedding_model,
    read_metadata,
)
from ..progress_bar import move_bar
from ..runner import BACKENDS, CANCELLED, run_job
from ..styling import apply_on_load, class_style
from .base import decimal_parameter, integer_parameter, optional_output
from .inference_base import LayerRole, ModelInferenceAlgorithm, advanced, first_output

GROUP_EMBEDDINGS = ("embeddings", "Embeddings")


@dataclass
class Embedded:
    """One input layer after the encoder ran on it."""

    layer: Any
    raster: Any  # backend.inference.RasterInput of the layer's file and bands
    embedding: Optional[str]  # the engine's embedding GeoTIFF (staging folder); None: bands only


class ScoreStyle(QgsProcessingLayerPostProcessorInterface):
    """A score rendered with a colour ramp of QGIS's default style, stretched between two
    cumulative fractions of its values (a 0-1 score often spans a narrow part of 0-1)."""

    def __init__(self, ramp: str, low: float = 0.02, high: float = 0.98):
        super().__init__()
        self.ramp, self.low, self.high = ramp, low, high

    def postProcessLayer(self, layer, context, feedback):
        if not isinstance(layer, QgsRasterLayer):
            return
        minimum, maximum = layer.dataProvider().cumulativeCut(
            1, self.low, self.high, layer.extent(), 250000
        )
        if not maximum > minimum:
            minimum, maximum = 0.0, 1.0
        ramp = QgsStyle.defaultStyle().colorRamp(self.ramp)
        shader_function = QgsColorRampShader(minimum, maximum, ramp)
        shader_function.classifyColorRamp(5, -1)
        shader = QgsRasterShader()
        shader.setRasterShaderFunction(shader_function)
        renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
        renderer.setClassificationMin(minimum)
        renderer.setClassificationMax(maximum)
        layer.setRenderer(renderer)
        layer.triggerRepaint()


def style_score(
    context, path: str, ramp: str, low: float = 0.02, high: float = 0.98, rank: int = 0
) -> None:
    apply_on_load(context, path, ScoreStyle(ramp, low, high), rank=rank)


class EmbeddingToolAlgorithm(ModelInferenceAlgorithm):
    """Base class: subclasses add their parameters in ``initOutputs`` and implement ``run_tool``."""

    GROUP = GROUP_EMBEDDINGS
    TASK = "embedding"
    ROLES: Tuple[LayerRole, ...] = (LayerRole("INPUT", "Input raster layer", "BANDS", "Bands"),)
    MODEL_PER_SENSOR = True
    SEED = "SEED"
    BAND_WEIGHT = "BAND_WEIGHT"
    OUTPUT_PROBABILITY = "OUTPUT_PROBABILITY"
    MODEL_LABEL = "msGFM embedding model (.onnx; empty: the bundled model for the input's sensor)"
    STEPS = 2  # progress steps: encoder runs, then the map

    def add_seed(self) -> None:
        self.addParameter(
            advanced(
                integer_parameter(
                    self.SEED,
                    self.tr("Random seed (sampling of pixels; same seed, same result)"),
                    0,
                    minimum=0,
                )
            )
        )

    def add_band_weight(self, default: float) -> None:
        self.addParameter(
            advanced(
                decimal_parameter(
                    self.BAND_WEIGHT,
                    self.tr("Weight of the pixel's own bands against the embedding"),
                    default,
                    minimum=0.0,
                    maximum=10.0,
                )
            )
        )

    def add_class_outputs(self) -> None:
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Classes")))
        self.addParameter(
            optional_output(
                QgsProcessingParameterRasterDestination,
                self.OUTPUT_PROBABILITY,
                self.tr("Class probabilities"),
            )
        )

    def add_examples(self, name: str, label: str) -> None:
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                name,
                label,
                types=[QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon],
            )
        )

    # Subclass hook ------------------------------------------------------------------------------

    def run_tool(self, parameters, context, feedback, staging: Path, copies: Path) -> Dict:
        raise NotImplementedError

    def needs_encoder(self, parameters, context) -> bool:
        """Whether this run computes embeddings (then it needs an embedding model)."""
        return True

    # The run ----------------------------------------------------------------------------------

    def processAlgorithm(self, parameters, context, feedback):
        require_onnxruntime()
        if (
            self.needs_encoder(parameters, context)
            and not self.parameterAsFile(parameters, self.MODEL, context)
            and not bundled_embedding_models()
        ):
            # Every embedding model was gated out: refuse before reading or writing anything.
            raise QgsProcessingException(no_embedding_model(self.MODEL_LABEL))
        steps = QgsProcessingMultiStepFeedback(self.STEPS, feedback)
        destination = self.destination(parameters, self.OUTPUT, context)
        staging = Path(tempfile.mkdtemp(prefix=".msgfm-", dir=str(destination.parent)))
        copies = Path(tempfile.mkdtemp(prefix="msgfm-layers-"))
        from backend import inference

        try:
            results = self.run_tool(parameters, context, steps, staging, copies)
        except inference.InferenceCancelledError:
            raise QgsProcessingException(CANCELLED) from None
        except (inference.InferenceError, ValueError) as exc:
            if feedback.isCanceled():
                raise QgsProcessingException(CANCELLED) from None
            raise QgsProcessingException(str(exc)) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(copies, ignore_errors=True)
        feedback.setProgress(100)
        return results

    def cancel_token(self, feedback) -> Any:
        from backend.inference import CancelToken

        token = CancelToken(poll=feedback.isCanceled)
        feedback.canceled.connect(token.cancel)
        return token

    def progress(self, feedback):
        def report(fraction: float, message: str) -> None:
            move_bar(feedback, 100.0 * fraction)
            if message:
                feedback.setProgressText(message)

        return report

    def model_for(
        self, parameters, context, layer, chosen_bands: Sequence[int], feedback
    ) -> Tuple[str, Any]:
        """The embedding model to run on ``layer``: the chosen file, else the bundled one that fits."""
        chosen = self.parameterAsFile(parameters, self.MODEL, context)
        if chosen:
            metadata = read_metadata(chosen)
            check_task(metadata, self.TASK)
            if len(metadata.inputs) != 1 or first_output(metadata, ("embedding",)) is None:
                raise QgsProcessingException(
                    self.tr(
                        "The model '{}' must have one input and an embedding output; "
                        "choose an embedding model exported by `msgfm export`"
                    ).format(metadata.model_name)
                )
            return chosen, metadata
        return self.bundled_model_for(parameters, context, layer, chosen_bands, feedback)

    def embed(
        self,
        role: LayerRole,
        layer,
        model: Tuple[str, Any],
        parameters,
        context,
        feedback,
        staging: Path,
        copies: Path,
        path: Optional[str] = None,
        bands: Optional[List[int]] = None,
    ) -> Embedded:
        """Run the encoder ``model`` (path, metadata) over ``layer``; returns its embedding raster."""
        model_path, metadata = model
        spec = metadata.inputs[0]
        if bands is None:
            bands = self.layer_bands(role, layer, spec, parameters, context)
        if path is None:
            path = raster_file(layer, copies, context, role.layer_label)
        feedback.pushInfo(
            f"{role.layer_label}: '{layer.name()}' bands {bands} -> model input '{spec.name}' "
            f"({spec.sensor}: {', '.join(spec.bands)})"
        )
        job = self.job(
            model_path,
            [{"sensor": spec.sensor, "path": path, "bands": bands}],
            staging,
            parameters,
            context,
        )
        job.out = str(staging / f"{role.layer_param.lower()}_embedding.tif")
        summary = run_job(job, BACKENDS[self.enum(parameters, self.BACKEND, context)], feedback)
        self.report(summary, layer, feedback)
        from backend import inference

        raster = inference.RasterInput(sensor=spec.sensor, path=path, bands=bands)
        index = first_output(metadata, ("embedding",))
        return Embedded(layer, raster, summary["outputs"][index])

    def layer_bands(self, role: LayerRole, layer, spec, parameters, context) -> List[int]:
        """The bands of ``layer`` (role ``role``) that feed ``spec``, in its order; refused
        before any work as the engine would refuse them."""
        return choose_bands(
            layer,
            self.parameterAsInts(parameters, role.bands_param, context),
            spec,
            role.bands_label,
            run_anyway=self.run_anyway(parameters, context),
        )

    def input_reading(self, parameters, context, feedback, model=None, bands_only=False):
        """The ``INPUT`` layer, what reads it and its bands in that reading's order.

        What reads it: ``model`` (path, metadata) when given; else the chosen model file; else,
        for the encoder, the bundled embedding model of the layer's sensor, and for the pixel's
        bands only, the sensor registry's entry of the layer's sensor (no model file: path None).

        Returns:
            (layer, (model path or None, metadata), 1-based bands).
        """
        role = self.ROLES[0]
        layer = self.parameterAsRasterLayer(parameters, role.layer_param, context)
        if model is None:
            chosen = self.parameterAsInts(parameters, role.bands_param, context)
            if bands_only and not self.parameterAsFile(parameters, self.MODEL, context):
                model = (None, self.registry_reading(parameters, context, layer, feedback))
            else:
                model = self.model_for(parameters, context, layer, chosen, feedback)
        bands = self.layer_bands(role, layer, model[1].inputs[0], parameters, context)
        return layer, model, bands

    def registry_reading(self, parameters, context, layer, feedback) -> Any:
        """How to read ``layer``'s bands with no model: the sensor registry's entry of its sensor
        (found from its bands, or SENSOR), as model metadata with no output."""
        from backend.embedtools.bands_only import reading_metadata, sensor_input
        from backend.sensor_resolver import BandMatchError, choose_sensor, describe_sensor

        try:
            sensor = choose_sensor(
                layer_facts(layer), None, self.requested_sensor(parameters, context)
            )
        except BandMatchError as exc:
            raise QgsProcessingException(str(exc)) from None
        feedback.pushInfo(f"Sensor of the input: {describe_sensor(sensor)}")
        return reading_metadata(sensor_input(sensor))

    def embed_input(self, parameters, context, feedback, staging: Path, copies: Path, model=None):
        """Embed the ``INPUT`` layer with ``model`` (path, metadata) or the model that fits it.

        Returns:
            (embedded layer, model path, model metadata); the progress moves to the map step.
        """
        layer, model, bands = self.input_reading(parameters, context, feedback, model)
        embedded = self.embed(
            self.ROLES[0], layer, model, parameters, context, feedback, staging, copies, bands=bands
        )
        feedback.setCurrentStep(1)
        return embedded, model[0], model[1]

    def read_input(self, parameters, context, feedback, copies: Path, model=None):
        """The ``INPUT`` layer's bands for a classifier on the pixel's bands only: no encoder runs.

        ``model`` (path or None, metadata), else a chosen model file, else the sensor registry's
        entry of the layer's sensor says which bands the layer must hold, in which order, and how
        they are normalised (:meth:`input_reading`); a layer of an unknown sensor, or without its
        bands, is refused before any work.

        Returns:
            (the layer's bands as :class:`Embedded` with no embedding, model path or None,
            metadata).
        """
        layer, (model_path, metadata), bands = self.input_reading(
            parameters, context, feedback, model, bands_only=True
        )
        spec = metadata.inputs[0]
        role = self.ROLES[0]
        path = raster_file(layer, copies, context, role.layer_label)
        from backend.embedtools.bands_only import READER_NAME, describe

        if model_path:
            how = f"normalised as the model '{metadata.model_name}' normalises them"
        elif metadata.model_name == READER_NAME:
            how = "as the sensor registry reads them"
        else:  # a classifier file's own record of the input
            how = f"normalised as {metadata.model_name} records"
        feedback.pushInfo(
            f"{role.layer_label}: '{layer.name()}' bands {bands} -> the pixel's bands "
            f"({describe(spec)}), {how}; the encoder does not run"
        )
        from backend import inference

        raster = inference.RasterInput(sensor=spec.sensor, path=path, bands=bands)
        feedback.setCurrentStep(1)
        return Embedded(layer, raster, None), model_path, metadata

    def write_classes(self, features, predict, classes, parameters, context, feedback) -> Dict:
        """The class map (``OUTPUT``, styled) and the optional ``OUTPUT_PROBABILITY``."""
        from backend.embedtools import maps

        probability = None
        if self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITY, context):
            probability = self.destination(parameters, self.OUTPUT_PROBABILITY, context)
        written = maps.classification_map(
            features,
            predict,
            classes,
            self.destination(parameters, self.OUTPUT, context),
            probability,
            self.progress(feedback),
            self.cancel_token(feedback),
        )
        results: Dict[str, Any] = {self.OUTPUT: str(written[0])}
        apply_on_load(context, results[self.OUTPUT], class_style(classes))
        if probability is not None:
            results[self.OUTPUT_PROBABILITY] = str(written[1])
            apply_on_load(context, results[self.OUTPUT_PROBABILITY], visible=False, rank=1)
        return results

    def examples(self, parameters, name: str, field: Optional[str], crs, context, feedback):
        """The features of vector parameter ``name`` as backend examples in ``crs``."""
        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            raise QgsProcessingException(
                self.tr("Choose a point or polygon layer in '{}'").format(name)
            )
        from backend.embedtools.examples import Example

        request = QgsFeatureRequest().setDestinationCrs(crs, context.transformContext())
        found, unlabelled, empty = [], 0, 0
        for feature in source.getFeatures(request):
            geometry = feature.geometry()
            if geometry is None or geometry.isEmpty():
                empty += 1
                continue
            label: Any = None
            if field:
                label = feature[field]
                if label is None or (hasattr(label, "isNull") and label.isNull()):
                    unlabelled += 1
                    continue
                if isinstance(label, float) and label.is_integer():
                    label = int(label)
                elif not isinstance(label, (int, str)):
                    label = str(label)
            found.append(Example(label, str(feature.id()), json.loads(geometry.asJson())))
        if unlabelled:
            feedback.pushWarning(
                f"{unlabelled} feature(s) without a value in '{field}' are left out"
            )
        if empty:
            feedback.pushWarning(f"{empty} feature(s) without a geometry are left out")
        if not found:
            raise QgsProcessingException(
                f"The layer in '{self.parameterDefinition(name).description()}' has no usable "
                "feature (each needs a geometry" + (f" and a value in '{field}')" if field else ")")
            )
        return found

    def features(
        self,
        embedded: Embedded,
        metadata: Any,
        stack,
        include_bands: bool = True,
        feedback=None,
        run_anyway: bool = False,
    ):
        """Per-pixel features of an embedded layer (embedding upsampled + its own bands), or of
        its bands only when no embedding was computed (then the input checks run here)."""
        from backend.embedtools import features as module

        features = module.PixelFeatures(
            embedded.embedding,
            embedded.raster,
            metadata,
            stack,
            include_bands=include_bands,
            warn=feedback.pushWarning if feedback is not None else None,
            run_anyway=run_anyway,
        )
        if embedded.embedding is None and feedback is not None:
            feedback.pushInfo(f"Read {features.input.raster.describe()}: {features.input.how}")
        return features
