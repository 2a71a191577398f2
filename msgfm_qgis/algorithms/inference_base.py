"""Shared shape of the analysis algorithms: layers and bands in, a model, tiled inference, outputs.

A subclass names its task, the layers it takes (:class:`LayerRole`, the reference grid first) and its
outputs; this base class adds the model and advanced parameters, checks everything against the model
metadata before any work, runs the engine in-process or in a worker subprocess, and hands the results
to the subclass to move into place and style.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterRasterLayer,
)

from backend.sensor_resolver import BandMatchError, choose_sensor
from backend.sensors import SENSORS

from ..area_of_interest import AreaOfInterest, area_from_parameters, cut_to_area
from ..bundled_models import (
    alternatives,
    bundled_embedding_models,
    bundled_metadata,
    embedding_models_note,
    help_note,
)
from ..dependencies import require_onnxruntime
from ..layer_preselection import preselect
from ..layers import raster_file, source_file
from ..model_checks import (
    bundled_model,
    check_overlap,
    check_task,
    choose_bands,
    layer_facts,
    no_embedding_model,
    read_metadata,
    resolve_model_path,
)
from ..output_folders import layer_copies_folder, output_staging_folder, writable_folder
from ..runner import BACKENDS, InferenceJob, run_job
from .base import (
    GROUP_ANALYSIS,
    MsgfmAlgorithm,
    decimal_parameter,
    file_parameter,
    integer_parameter,
)

DEVICES = ("auto", "cpu", "cuda")
DEVICE_LABELS = ("Automatic (CUDA when available, else CPU)", "CPU", "CUDA (NVIDIA GPU)")
BACKEND_LABELS = (
    "In QGIS (in-process)",
    "Local subprocess (Python from the msGFM setting msgfm/worker_python)",
)
GEOTIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class LayerRole:
    """One raster layer parameter and the model input it feeds.

    Attributes:
        layer_param, layer_label: the layer parameter's name and label.
        bands_param, bands_label: its band-selection parameter.
        sensor: the model input (by sensor) this layer feeds; None: the next input in model order.
        optional: the layer may be left empty (for models with fewer inputs).
    """

    layer_param: str
    layer_label: str
    bands_param: str
    bands_label: str
    sensor: Optional[str] = None
    optional: bool = False


def input_roles(second_example: str = "") -> Tuple[LayerRole, LayerRole]:
    """The layers of a one- or two-input model: the input, and an optional second sensor layer.

    Args:
        second_example: what a second input is for this task's models, for its label.
    """
    example = f", e.g. {second_example}" if second_example else ""
    return (
        LayerRole("INPUT", "Input raster layer", "BANDS", "Bands"),
        LayerRole(
            "SECOND_INPUT",
            f"Second sensor layer (models with two inputs{example})",
            "SECOND_BANDS",
            "Bands of the second sensor layer",
            optional=True,
        ),
    )


@dataclass
class RunPlan:
    """What was resolved before the run: the model, the layers per input, the job."""

    metadata: Any
    inputs: List[Tuple[LayerRole, Any, Any]]  # (role, layer, model input spec)
    job: InferenceJob


def advanced(parameter: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return parameter


def device_parameter(algorithm: MsgfmAlgorithm, name: str) -> QgsProcessingParameterDefinition:
    """The advanced Device choice (automatic, CPU, CUDA) of every algorithm that runs a model."""
    return advanced(
        QgsProcessingParameterEnum(
            name,
            algorithm.tr("Device"),
            options=[algorithm.tr(o) for o in DEVICE_LABELS],
            defaultValue=0,
        )
    )


class ModelInferenceAlgorithm(MsgfmAlgorithm):
    """Base class of the analysis algorithms. Subclasses set ``TASK``, ``ROLES`` and the outputs."""

    GROUP = GROUP_ANALYSIS
    TASK = ""
    ROLES: Tuple[LayerRole, ...] = ()

    MODEL = "MODEL"
    MODEL_LABEL = "msGFM model (.onnx; empty: the bundled model)"
    # True: the bundled models are one embedding model per sensor, the one that fits the input
    # is chosen by its bands (or by SENSOR); False: the bundled model of TASK.
    MODEL_PER_SENSOR = False
    SENSOR = "SENSOR"
    AREA_EXTENT = "AREA_EXTENT"
    AREA_POLYGONS = "AREA_POLYGONS"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    BATCH_SIZE = "BATCH_SIZE"
    DEVICE = "DEVICE"
    BACKEND = "BACKEND"
    RUN_ANYWAY = "RUN_ANYWAY"
    OUTPUT = "OUTPUT"
    OUTPUT_LABEL = "Output"
    LAYER_NAME = ""  # the name in the Layers panel when shorter than OUTPUT_LABEL

    def initAlgorithm(self, config=None):
        defaults = self.preselected_layers()
        for role in self.ROLES:
            self.addParameter(
                QgsProcessingParameterRasterLayer(
                    role.layer_param,
                    self.tr(role.layer_label),
                    defaultValue=defaults.get(role.layer_param),
                    optional=role.optional,
                )
            )
            self.addParameter(
                QgsProcessingParameterBand(
                    role.bands_param,
                    self.tr("{} (empty: all bands, or found by name)").format(
                        self.tr(role.bands_label)
                    ),
                    parentLayerParameterName=role.layer_param,
                    optional=True,
                    allowMultiple=True,
                )
            )
        # With a model per sensor there is no fixed default file: the model is chosen per input.
        default = None if self.MODEL_PER_SENSOR else bundled_model(self.TASK)
        self.addParameter(
            file_parameter(
                self.MODEL,
                self.tr(self.MODEL_LABEL),
                extension="onnx",
                optional=True,
                default=str(default) if default is not None and default.is_file() else None,
            )
        )
        self.addParameter(
            QgsProcessingParameterExtent(
                self.AREA_EXTENT,
                self.tr("Area of interest (empty: the whole layer)"),
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.AREA_POLYGONS,
                self.tr("Area of interest polygons (only pixels inside them are processed)"),
                [QgsProcessing.TypeVectorPolygon],
                optional=True,
            )
        )
        self.initOutputs()
        self.addParameter(
            advanced(
                integer_parameter(
                    self.TILE_SIZE,
                    self.tr("Tile size in pixels (0: the model's)"),
                    0,
                    minimum=0,
                )
            )
        )
        self.addParameter(
            advanced(
                decimal_parameter(
                    self.OVERLAP,
                    self.tr("Overlap between tiles, fraction of a tile (-1: the model's)"),
                    -1.0,
                    minimum=-1.0,
                    maximum=0.9,
                )
            )
        )
        self.addParameter(
            advanced(
                integer_parameter(
                    self.BATCH_SIZE,
                    self.tr("Tiles per model call (batch size)"),
                    4,
                    minimum=1,
                )
            )
        )
        self.addParameter(device_parameter(self, self.DEVICE))
        self.addParameter(
            advanced(
                QgsProcessingParameterEnum(
                    self.BACKEND,
                    self.tr("Run the model"),
                    options=[self.tr(o) for o in BACKEND_LABELS],
                    defaultValue=0,
                )
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterBoolean(
                    self.RUN_ANYWAY,
                    self.tr(
                        "Run anyway on input out of the model's domain (values far from its "
                        "training data, bands in a doubtful order); the output is marked so"
                    ),
                    defaultValue=False,
                )
            )
        )
        if self.MODEL_PER_SENSOR:
            self.addParameter(
                advanced(
                    QgsProcessingParameterEnum(
                        self.SENSOR,
                        self.tr(
                            "Sensor of the input, to pick the bundled model or how the bands "
                            "are read (automatic: by its bands)"
                        ),
                        options=[self.tr("Automatic"), *SENSORS],
                        defaultValue=0,
                    )
                )
            )

    def preselected_layers(self) -> Dict[str, str]:
        """Layer ids of the open project that fit each role's model input (see
        :mod:`..layer_preselection`); empty without raster layers or a readable bundled model."""
        from qgis.core import QgsProject, QgsRasterLayer

        layers = [
            layer
            for layer in QgsProject.instance().mapLayers().values()
            if isinstance(layer, QgsRasterLayer) and layer.isValid()
        ]
        if not layers:
            return {}
        metadata = bundled_metadata(self.TASK)
        if metadata is None:
            return {}
        specs = list(metadata.inputs)
        roles: List[Tuple[LayerRole, Any]] = []
        for role in self.ROLES:  # sensor-named roles first, then the others in order
            spec = next((s for s in specs if role.sensor and s.sensor == role.sensor), None)
            if spec is not None:
                specs.remove(spec)
                roles.append((role, spec))
        for role in self.ROLES:
            if not any(r is role for r, _ in roles) and specs:
                roles.append((role, specs.pop(0)))
        chosen = preselect(layers, [spec for _, spec in roles])
        return {role.layer_param: layer.id() for (role, _), layer in zip(roles, chosen) if layer}

    def shortHelpString(self):
        return self.HELP + (
            embedding_models_note() if self.MODEL_PER_SENSOR else help_note(self.TASK)
        )

    # Subclass hooks ---------------------------------------------------------------------------

    def initOutputs(self) -> None:
        """Add the output parameters."""
        raise NotImplementedError

    def check_outputs(self, metadata: Any) -> None:
        """Refuse a model without the output this algorithm writes (before any work)."""

    def prepare_job(self, plan: RunPlan, staging: Path, parameters, context) -> None:
        """Adjust the job before it runs (e.g. ask for a scene grid)."""

    def layer_name(self, plan: RunPlan) -> str:
        """The main output's name in the Layers panel for this run (``LAYER_NAME``, else
        ``OUTPUT_LABEL``); a subclass whose name depends on the run overrides it."""
        return self.LAYER_NAME or self.OUTPUT_LABEL

    def deliver(self, plan: RunPlan, written: List[str], parameters, context, feedback) -> Dict:
        """Move the engine's outputs (``written``, in model output order) to their destinations
        and set their styles; returns the algorithm's results."""
        raise NotImplementedError

    # The run ----------------------------------------------------------------------------------

    def processAlgorithm(self, parameters, context, feedback):
        feedback.setProgressText("Opening the model and checking the layers...")
        require_onnxruntime()
        model_path, metadata = self.model(parameters, context, feedback)
        check_task(metadata, self.TASK)
        self.check_outputs(metadata)
        self.model_path = model_path  # whose acceptance record may refuse a mode (assign_inputs)
        inputs = self.assign_inputs(metadata, parameters, context, feedback)
        run_anyway = self.run_anyway(parameters, context)
        bands = [
            choose_bands(
                layer,
                self.band_list(parameters, role.bands_param, context),
                spec,
                role.bands_label,
                alternatives(model_path),
                run_anyway,
            )
            for role, layer, spec in inputs
        ]
        reference_role, reference_layer, _ = inputs[0]
        for role, layer, _ in inputs[1:]:
            check_overlap(
                reference_layer, reference_role.layer_label, layer, role.layer_label, context
            )
        destination = self.destination(parameters, self.OUTPUT, context)
        label = self.parameterDefinition(self.OUTPUT).description()
        staging = output_staging_folder(destination.parent, label)
        try:
            copies = layer_copies_folder()
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        try:
            rasters = []
            area = self.area_of_interest(parameters, context, reference_layer)
            for (role, layer, spec), chosen_bands in zip(inputs, bands):
                path = raster_file(layer, copies, context, role.layer_label)
                if area is not None and layer is reference_layer:
                    path = cut_to_area(path, area, copies, layer.name())
                    feedback.pushInfo(
                        f"Area of interest: {area.extent.toString(2)} "
                        f"({'polygons' if area.polygons else 'extent'}) of '{layer.name()}'"
                    )
                rasters.append({"sensor": spec.sensor, "path": path, "bands": chosen_bands})
                feedback.pushInfo(
                    f"{role.layer_label}: '{layer.name()}' bands {chosen_bands} -> model input "
                    f"'{spec.name}' ({spec.sensor}: {', '.join(spec.bands)})"
                )
            plan = RunPlan(
                metadata, inputs, self.job(model_path, rasters, staging, parameters, context)
            )
            self.prepare_job(plan, staging, parameters, context)
            feedback.pushInfo(
                f"Model: {metadata.model_name} {metadata.model_version} ({model_path})"
            )
            summary = run_job(
                plan.job, BACKENDS[self.enum(parameters, self.BACKEND, context)], feedback
            )
            self.report(summary, reference_layer, feedback)
            results = self.deliver(plan, summary["outputs"], parameters, context, feedback)
            if summary.get("out_of_domain"):
                mark_out_of_domain(results, context, feedback)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(copies, ignore_errors=True)
        feedback.setProgress(100)
        return results

    def model(self, parameters, context, feedback) -> Tuple[str, Any]:
        """The model to run, (path, metadata): the chosen file, else the bundled model."""
        chosen = self.parameterAsFile(parameters, self.MODEL, context)
        if chosen or not self.MODEL_PER_SENSOR:
            model_path = resolve_model_path(chosen, self.TASK)
            return model_path, read_metadata(model_path)
        role = self.ROLES[0]
        layer = self.parameterAsRasterLayer(parameters, role.layer_param, context)
        if layer is None:
            raise QgsProcessingException(
                self.tr("Choose a layer in '{}'").format(self.tr(role.layer_label))
            )
        bands = self.band_list(parameters, role.bands_param, context)
        return self.bundled_model_for(parameters, context, layer, bands, feedback)

    def bundled_model_for(
        self, parameters, context, layer, chosen_bands: Sequence[int], feedback
    ) -> Tuple[str, Any]:
        """The bundled embedding model that fits ``layer`` (its chosen bands, or SENSOR)."""
        models = bundled_embedding_models()
        if not models:  # all gated out (docs/acceptance.md): say so, not "no model for s2"
            raise QgsProcessingException(no_embedding_model(self.MODEL_LABEL))
        sensor = self.requested_sensor(parameters, context)
        try:
            chosen = choose_sensor(layer_facts(layer), [m.sensor for m in models], sensor)
        except BandMatchError as exc:
            raise QgsProcessingException(
                self.tr("{}; or choose a model in '{}' (bundled embedding models: {})").format(
                    exc, self.tr(self.MODEL_LABEL), "; ".join(m.describe() for m in models)
                )
            ) from None
        found = next(m for m in models if m.sensor == chosen)
        feedback.pushInfo(f"Bundled embedding model for this input: {found.describe()}")
        return str(found.path), found.metadata

    def requested_sensor(self, parameters, context) -> Optional[str]:
        """The sensor chosen in the advanced SENSOR parameter; None: automatic (or no such
        parameter)."""
        if self.parameterDefinition(self.SENSOR) is None:
            return None
        index = self.parameterAsEnum(parameters, self.SENSOR, context)
        return list(SENSORS)[index - 1] if index > 0 else None

    def assign_inputs(self, metadata, parameters, context, feedback) -> List[Tuple]:
        """Pair each model input with a layer: sensor-named roles first, the others in order."""
        layers = {
            role.layer_param: self.parameterAsRasterLayer(parameters, role.layer_param, context)
            for role in self.ROLES
        }
        specs = list(metadata.inputs)
        assigned: Dict[str, Any] = {}
        for role in self.ROLES:
            if role.sensor and role.sensor in [s.sensor for s in specs]:
                spec = next(s for s in specs if s.sensor == role.sensor)
                assigned[role.layer_param] = spec
                specs.remove(spec)
        for role in self.ROLES:
            if role.layer_param not in assigned and specs:
                if layers[role.layer_param] is None and role.optional:
                    continue
                assigned[role.layer_param] = specs.pop(0)
        if specs:
            missing = specs[0]
            free = [r for r in self.ROLES if r.layer_param not in assigned]
            where = f" in '{free[0].layer_label}'" if free else ""
            raise QgsProcessingException(
                self.tr("The model '{}' also needs a {} layer ({} bands: {}): choose it{}").format(
                    metadata.model_name,
                    missing.sensor,
                    len(missing.bands),
                    ", ".join(missing.bands),
                    where,
                )
            )
        inputs = []
        for role in self.ROLES:
            layer = layers[role.layer_param]
            if role.layer_param not in assigned:
                if layer is not None:
                    feedback.pushWarning(
                        f"The model '{metadata.model_name}' takes no further input: layer "
                        f"'{layer.name()}' ({role.layer_label}) is not used"
                    )
                continue
            spec = assigned[role.layer_param]
            if layer is None and role.optional and spec.optional:
                refusal = self.refused_without(spec)
                if refusal:
                    raise QgsProcessingException(
                        self.tr("'{}' is empty: {}").format(self.tr(role.layer_label), refusal)
                    )
                # The model was trained with samples without this input: the engine feeds it as
                # training did (the run says so in its log and the output's metadata).
                feedback.pushInfo(
                    f"{role.layer_label}: empty; the model '{metadata.model_name}' was trained "
                    f"with samples without {spec.sensor} and runs without it"
                )
                continue
            if layer is None:
                raise QgsProcessingException(self.missing_layer_message(role, spec, metadata))
            inputs.append((role, layer, spec))
        return inputs

    def refused_without(self, spec: Any) -> str:
        """Why the chosen model may not run without ``spec``'s input ('' when it may): its
        bundled folder's acceptance record failed that mode (backend.inference.accepted_modes)."""
        from backend.inference.accepted_modes import refused_without

        path = getattr(self, "model_path", None)
        return (refused_without(path, spec.sensor) or "") if path else ""

    def missing_layer_message(self, role: LayerRole, spec: Any, metadata: Any) -> str:
        """Why an empty layer parameter stops the run, and what to do."""
        if role.optional:  # the role may be empty, but not for this model
            return self.tr(
                "'{}' is empty, but the model '{}' was not trained without a {} input, so it "
                "cannot run without one: choose a layer in '{}', or a model trained without it "
                "(msGFM > Model information lists such an input as optional)"
            ).format(role.layer_label, metadata.model_name, spec.sensor, role.layer_label)
        return self.tr("Choose a layer in '{}': the model's {} input needs one").format(
            role.layer_label, spec.sensor
        )

    def run_anyway(self, parameters, context) -> bool:
        if self.parameterDefinition(self.RUN_ANYWAY) is None:
            return False
        return self.parameterAsBoolean(parameters, self.RUN_ANYWAY, context)

    def job(self, model_path, rasters, staging: Path, parameters, context) -> InferenceJob:
        tile_size = self.parameterAsInt(parameters, self.TILE_SIZE, context)
        overlap = self.parameterAsDouble(parameters, self.OVERLAP, context)
        return InferenceJob(
            run_anyway=self.run_anyway(parameters, context),
            model=model_path,
            inputs=rasters,
            out=str(staging / "output.tif"),
            tile_size=tile_size or None,
            overlap=overlap if overlap >= 0 else None,
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            device=DEVICES[self.enum(parameters, self.DEVICE, context)],
        )

    def report(self, summary: Dict, reference_layer, feedback) -> None:
        # Which raster band fed which model band, and every conversion applied to the values.
        for line in summary.get("inputs") or []:
            feedback.pushInfo(f"Read {line}")
        for sensor in summary.get("absent_inputs") or []:
            feedback.pushInfo(
                f"Ran WITHOUT {sensor}: fed as the model's training fed its samples without "
                f"{sensor} (the output's metadata says so too)"
            )
        feedback.pushInfo(
            f"Ran on {summary['provider']}: {summary['tiles_run']} tiles run, "
            f"{summary['tiles_skipped']} skipped as nodata, in {summary['seconds']:.1f} s "
            f"(tile {summary['tile_size']} px, overlap {summary['overlap']} px, batch "
            f"{summary['batch_size']})"
        )

    # Helpers ------------------------------------------------------------------------------------

    def area_of_interest(self, parameters, context, layer) -> Optional[AreaOfInterest]:
        """The area of interest in ``layer``'s CRS, or None for the whole layer."""
        extent = None
        if self.parameterDefinition(self.AREA_EXTENT) is not None and parameters.get(
            self.AREA_EXTENT
        ):
            extent = self.parameterAsExtent(parameters, self.AREA_EXTENT, context, layer.crs())
        source = None
        if parameters.get(self.AREA_POLYGONS):
            source = self.parameterAsSource(parameters, self.AREA_POLYGONS, context)
        return area_from_parameters(extent, source, layer, context)

    def band_list(self, parameters, name: str, context) -> List[int]:
        """The bands chosen in ``name``: a list, or text such as ``12,11,10`` or ``12;11;10``.

        QGIS reads ``BANDS=12,11,10`` (``qgis_process``, the documented syntax) as one band;
        the text is split here instead.
        """
        value = parameters.get(name)
        if isinstance(value, str) and value.strip():
            parts = [part for part in re.split(r"[\s,;]+", value.strip()) if part]
            if not all(part.isdigit() and int(part) >= 1 for part in parts):
                label = self.parameterDefinition(name).description()
                raise QgsProcessingException(
                    self.tr("'{}' must list 1-based band numbers such as 3,2,1, not {!r}").format(
                        label, value
                    )
                )
            return [int(part) for part in parts]
        return self.parameterAsInts(parameters, name, context)

    def enum(self, parameters, name: str, context) -> int:
        return self.parameterAsEnum(parameters, name, context)

    def destination(self, parameters, name: str, context) -> Path:
        """The GeoTIFF path of raster output ``name`` (msGFM writes GeoTIFF only)."""
        path = Path(self.parameterAsOutputLayer(parameters, name, context))
        if path.suffix.lower() not in GEOTIFF_SUFFIXES:
            raise QgsProcessingException(
                self.tr("msGFM writes GeoTIFF: choose a .tif file for '{}' instead of {}").format(
                    self.parameterDefinition(name).description(), path.name
                )
            )
        writable_folder(path.parent, self.parameterDefinition(name).description())
        self.refuse_input_as_output(path, parameters, name, context)
        return path

    def refuse_input_as_output(self, path: Path, parameters, name: str, context) -> None:
        """Refuse an output file that is one of the input layers' files: writing it would
        replace the input with the result."""
        for role in self.ROLES:
            if self.parameterDefinition(role.layer_param) is None:
                continue
            layer = self.parameterAsRasterLayer(parameters, role.layer_param, context)
            source = source_file(layer) if layer is not None else None
            if source and _same_file(Path(source), path):
                raise QgsProcessingException(
                    self.tr(
                        "'{}' is the file of the input layer '{}' ({}): writing the result "
                        "there would destroy the input. Choose another file"
                    ).format(
                        self.parameterDefinition(name).description(),
                        layer.name(),
                        self.tr(role.layer_label),
                    )
                )


def move_raster(source: str, destination: Path) -> str:
    """Move an engine output (and its .aux.xml legend) to ``destination``, replacing it."""
    source_path = Path(source)
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source_path), str(destination))
    aux = source_path.with_name(source_path.name + ".aux.xml")
    final_aux = destination.with_name(destination.name + ".aux.xml")
    if aux.exists():
        shutil.move(str(aux), str(final_aux))
    elif final_aux.exists():
        final_aux.unlink()  # a stale legend of an earlier output would describe other classes
    return str(destination)


def first_output(metadata: Any, kinds: Sequence[str]) -> Optional[int]:
    """Index of the model's first output of one of ``kinds`` (in ``kinds`` order), or None."""
    for kind in kinds:
        for index, spec in enumerate(metadata.outputs):
            if spec.kind == kind:
                return index
    return None


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.samefile(b)
    except OSError:
        return False


def mark_out_of_domain(results: Dict, context, feedback) -> None:
    """Say, in the layer names and the log, that the run went on out of the model's domain."""
    feedback.pushWarning(
        "The input was out of the model's domain and 'Run anyway' was set: treat the result "
        "with caution (the output layers are marked 'out of domain')"
    )
    for value in results.values():
        if isinstance(value, str) and context.willLoadLayerOnCompletion(value):
            details = context.layerToLoadOnCompletionDetails(value)
            details.name = f"{details.name} (out of domain)"
