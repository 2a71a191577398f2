"""msgfm:finetune — train a task model on raster layers and labels, and export it to ONNX.

The labels come from a class raster or from a polygon layer with a class field. The algorithm
checks the layers in QGIS (sensors, overlap, class field, at least two classes), writes a data spec
(``backend/train/data_spec.py``) into the training folder, runs the worker's ``finetune`` job and
then its ``export`` job, so the result is an ``.onnx`` the analysis algorithms take as it is.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputFolder,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
    QgsVectorFileWriter,
)

from backend.conventions import NULL_SCORE_REASON, json_safe
from backend.files import output_tempdir
from backend.sensors import get_sensor
from backend.tasks import get_task

from ..i18n import tr
from ..layers import band_names, raster_file
from ..model_checks import check_overlap
from ..output_folders import writable_folder
from ..resources import models_dir
from .base import (
    decimal_parameter,
    file_parameter,
    folder_parameter,
    integer_parameter,
    optional_output,
)
from .inference_base import DEVICES, advanced
from .training_base import CANCELLED, CONFIG_LABELS, CONFIGS, TrainingAlgorithm, layer_sensors

TASKS = ("segmentation", "classification")
TASK_LABELS = (
    "Land-cover segmentation (a class for every pixel)",
    "Scene classification (one class per tile, the tile's majority label)",
)
# The sensor a layer most likely holds, by its band count (the user names it otherwise).
SENSOR_BY_BAND_COUNT = {1: "dsm", 2: "sar", 3: "rgb", 4: "ms", 6: "landsat", 12: "s2", 13: "s2"}
# Sentinel-2 L1C band order (13 bands): B10 is dropped by name when the layer is read.
S2_L1C_BANDS = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
BUNDLED_ENCODER = "msgfm_lite_encoder"
# Pixels per side of the overview read to count a class raster's classes (a full read follows
# only when it finds fewer than two).
CLASS_COUNT_READ_SIDE = 2048
# The layer name of the polygon labels' copy, named in the data spec as ``polygon_layer``.
POLYGON_COPY_LAYER = "labels"


def bundled_encoder() -> Optional[Path]:
    """The pretrained encoder shipped with the plugin, when there is one."""
    folder = models_dir() / BUNDLED_ENCODER
    return folder if (folder / "model.safetensors").is_file() else None


class FinetuneAlgorithm(TrainingAlgorithm):
    NAME = "finetune"
    DISPLAY_NAME = "Finetune msGFM"
    JOB = "finetune"

    TASK = "TASK"
    IMAGES = "IMAGES"
    SENSORS = "SENSORS"
    LABEL_RASTER = "LABEL_RASTER"
    LABEL_POLYGONS = "LABEL_POLYGONS"
    CLASS_FIELD = "CLASS_FIELD"
    CHECKPOINT = "CHECKPOINT"
    EXPORTED_CHECKPOINT = "EXPORTED_CHECKPOINT"
    CONFIG = "CONFIG"
    CONFIG_FILE = "CONFIG_FILE"
    EPOCHS = "EPOCHS"
    MAX_STEPS = "MAX_STEPS"
    BATCH_SIZE = "BATCH_SIZE"
    VAL_FRACTION = "VAL_FRACTION"
    TILE_SIZE = "TILE_SIZE"
    SEED = "SEED"
    DEVICE = "DEVICE"
    OUTPUT = "OUTPUT"
    TRAINING_FOLDER = "TRAINING_FOLDER"
    METRICS = "METRICS"
    STEPS = "STEPS"

    HELP = (
        "Finetunes msGFM for land-cover segmentation or scene classification on your raster "
        "layers and labels, and writes an .onnx model ready for Segment land cover or Classify "
        "scenes. Runs in a separate Python process that needs torch: set it with the QGIS setting "
        "msgfm/worker_python.\n\n"
        "<b>Image raster layers</b>: the imagery, one layer per sensor (e.g. Sentinel-2 and "
        "Sentinel-1 of one place); the first is the training grid, the others are resampled "
        "onto it. <b>Sensor of each layer</b>: their sensors in layer order (rgb, s2, sar, dsm, "
        "pan, ms, landsat); empty guesses from the band count (1 dsm, 2 sar, 3 rgb, 4 ms, "
        "6 landsat, 12 or 13 s2).\n"
        "<b>Labels</b>: EITHER a <b>class raster</b> (one integer class per pixel; its nodata is "
        "unlabelled) OR a <b>polygon layer</b> with a <b>class field</b> (pixels outside the "
        "polygons are unlabelled). At least two classes are needed, and the labels must overlap "
        "the first image layer.\n"
        "<b>Starting checkpoint</b>: a pretraining checkpoint folder (msgfm:pretrain's "
        "checkpoint-last); empty: the bundled pretrained encoder when the plugin ships one, else "
        "random weights. With a checkpoint, its model size is used.\n"
        "<b>Epochs</b> (passes over the training tiles; 0 uses <b>Max steps</b>), <b>Batch "
        "size</b> (tiles per step), <b>Validation fraction</b> (a spatially separate part of the "
        "tiles held back and scored).\n\n"
        "<b>Output model</b>: the .onnx file, with the class values of the labels, the validation "
        "metrics and the training data in its metadata. <b>Training folder</b>: checkpoints, "
        "metrics.jsonl, summary.json and the data spec (empty: a temporary folder).\n\n"
        "Cancelling stops the training process within seconds and writes no model."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterEnum(
                self.TASK,
                self.tr("Task"),
                options=[self.tr(o) for o in TASK_LABELS],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.IMAGES, self.tr("Image raster layers"), layerType=QgsProcessing.TypeRaster
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.SENSORS,
                self.tr(
                    "Sensor of each layer, in layer order (empty: guessed from the band count)"
                ),
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                self.LABEL_RASTER, self.tr("Labels: class raster"), optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.LABEL_POLYGONS,
                self.tr("Labels: polygon layer (instead of a class raster)"),
                types=[QgsProcessing.TypeVectorPolygon],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.CLASS_FIELD,
                self.tr("Class field of the polygon layer"),
                parentLayerParameterName=self.LABEL_POLYGONS,
                optional=True,
            )
        )
        encoder = bundled_encoder()
        self.addParameter(
            folder_parameter(
                self.CHECKPOINT,
                self.tr(
                    "Starting checkpoint (pretraining checkpoint folder; empty: random weights)"
                ),
                optional=True,
                default=str(encoder) if encoder else None,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.CONFIG,
                self.tr("Model size (without a starting checkpoint)"),
                options=[self.tr(o) for o in CONFIG_LABELS],
                defaultValue=0,
            )
        )
        self.addParameter(
            advanced(
                file_parameter(
                    self.CONFIG_FILE,
                    self.tr("Model config JSON file (replaces the model size)"),
                    extension="json",
                    optional=True,
                )
            )
        )
        self.addParameter(
            integer_parameter(
                self.EPOCHS,
                self.tr("Epochs (0: train for max steps)"),
                0,
                minimum=0,
            )
        )
        self.addParameter(
            integer_parameter(
                self.MAX_STEPS,
                self.tr("Max steps (optimiser steps, when epochs is 0)"),
                300,
                minimum=1,
            )
        )
        self.addParameter(
            integer_parameter(
                self.BATCH_SIZE,
                self.tr("Batch size (tiles per step)"),
                8,
                minimum=1,
            )
        )
        self.addParameter(
            decimal_parameter(
                self.VAL_FRACTION,
                self.tr("Validation fraction (tiles held back for scoring)"),
                0.2,
                minimum=0.05,
                maximum=0.5,
            )
        )
        self.addParameter(
            advanced(
                integer_parameter(
                    self.TILE_SIZE,
                    self.tr("Tile size (pixels; a multiple of 32)"),
                    64,
                    minimum=32,
                )
            )
        )
        self.add_seed_and_device_parameters()
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT, self.tr("Output model (.onnx)"), fileFilter="ONNX models (*.onnx)"
            )
        )
        self.addParameter(
            optional_output(
                QgsProcessingParameterFolderDestination,
                self.TRAINING_FOLDER,
                self.tr("Training folder (checkpoints, metrics; empty: a temporary folder)"),
            )
        )
        self.addOutput(QgsProcessingOutputString(self.METRICS, "Validation metrics (JSON)"))
        self.addOutput(QgsProcessingOutputNumber(self.STEPS, "Steps trained"))
        self.addOutput(QgsProcessingOutputFolder(self.EXPORTED_CHECKPOINT, "Checkpoint exported"))

    def processAlgorithm(self, parameters, context, feedback):
        task = TASKS[self.parameterAsEnum(parameters, self.TASK, context)]
        onnx_path = self.output_model(parameters, context)
        tile_size = self.parameterAsInt(parameters, self.TILE_SIZE, context)
        if tile_size % 32:
            raise QgsProcessingException(
                self.tr(
                    "Tile size {} is not a multiple of 32 (the encoder's stride): use {}"
                ).format(tile_size, max(32, 32 * round(tile_size / 32)))
            )
        images = self.parameterAsLayerList(parameters, self.IMAGES, context)
        if not images:
            raise QgsProcessingException(self.tr("Choose at least one image raster layer"))
        sensors = self.image_sensors(parameters, context, images)
        labels = self.label_layer(parameters, context)
        for layer in [*images[1:], labels[0]]:
            check_overlap(images[0], "image layer", layer, "training layer", context)
        if labels[1] is not None:
            polygon_classes(labels[0], labels[1])  # refuses fewer than two before any copy

        folder, temporary = self.training_folder(parameters, context)
        try:
            results = self.train_and_export(
                parameters, context, feedback, task, onnx_path, images, sensors, labels, folder
            )
        finally:
            if temporary:  # the layers' copies and checkpoints: 20 MB and more per run
                shutil.rmtree(folder, ignore_errors=True)
        if temporary:
            feedback.pushInfo(
                "Removed the temporary training folder (choose 'Training folder' to keep the "
                "checkpoints)"
            )
            results[self.TRAINING_FOLDER] = ""
            results[self.EXPORTED_CHECKPOINT] = ""
        return results

    def train_and_export(
        self, parameters, context, feedback, task, onnx_path, images, sensors, labels, folder
    ) -> Dict[str, Any]:
        """Write the data spec into ``folder``, run the finetune and export jobs; the results."""
        tile_size = self.parameterAsInt(parameters, self.TILE_SIZE, context)
        copies = Path(output_tempdir(folder, "inputs-"))
        spec = self.data_spec(task, images, sensors, labels, copies, tile_size, context)
        spec_path = folder / "data_spec.json"
        spec_path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        feedback.pushInfo(f"Wrote the data spec: {spec_path}")

        params = self.finetune_params(parameters, context, task, spec_path, folder, feedback)
        steps = QgsProcessingMultiStepFeedback(2, feedback)
        result = self.run_job("finetune", params, steps)
        if feedback.isCanceled():
            raise QgsProcessingException(CANCELLED)
        scores = result.get("best_metrics") or result.get("val_metrics") or {}
        # The names the exported model's metadata uses (``val_mean_iou`` -> ``mean_iou``).
        metrics = {k[len("val_") :] if k.startswith("val_") else k: v for k, v in scores.items()}
        feedback.pushInfo(
            f"Trained {result.get('step')} steps on {result.get('device')} "
            f"({result.get('n_train')} training, {result.get('n_val')} validation tiles)"
        )
        metrics = json_safe(metrics)  # the worker sends undefined scores (NaN) as null
        for name, value in sorted(metrics.items()):
            if isinstance(value, (int, float)):
                feedback.pushInfo(f"Validation {name}: {value:.4g}")
            elif value is None:
                feedback.pushInfo(
                    f"Validation {name}: undefined on the validation tiles (e.g. a class absent from them)"
                )
        if None in metrics.values():
            metrics["null_means"] = NULL_SCORE_REASON

        checkpoint = folder / "checkpoint-best"
        if not (checkpoint / "model.safetensors").is_file():
            checkpoint = folder / "checkpoint-last"
        if not (checkpoint / "model.safetensors").is_file():
            raise QgsProcessingException(
                self.tr(
                    "msGFM finetuning ended but wrote no checkpoint in {}; see the log above"
                ).format(folder)
            )
        steps.setCurrentStep(1)
        exported = self.run_job("export", {"checkpoint": str(checkpoint), "out": onnx_path}, steps)
        feedback.pushInfo(
            f"Exported {checkpoint.name} to {onnx_path}; ONNX Runtime matches torch within "
            f"max abs diff {float(exported.get('max_abs_diff', float('nan'))):.2e}"
        )
        feedback.setProgress(100)
        return {
            self.OUTPUT: onnx_path,
            self.TRAINING_FOLDER: str(folder),
            self.METRICS: json.dumps(metrics, sort_keys=True, allow_nan=False),
            self.STEPS: result.get("step"),
            self.EXPORTED_CHECKPOINT: str(checkpoint),
        }

    def run_job(self, job: str, params: Dict[str, Any], feedback) -> Dict[str, Any]:
        """Run one worker job; the base class runs the job named by ``JOB``."""
        self.JOB = job
        return self.run_training_job({k: v for k, v in params.items() if v is not None}, feedback)

    # --- parameters -----------------------------------------------------------------------------

    def output_model(self, parameters, context) -> str:
        path = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if not path:
            raise QgsProcessingException(self.tr("Choose a file for 'Output model (.onnx)'"))
        if not path.lower().endswith(".onnx"):
            path += ".onnx"
        writable_folder(Path(path).parent, "Output model (.onnx)")
        return path

    def training_folder(self, parameters, context) -> Tuple[Path, bool]:
        """The training folder, and whether it is a temporary one (removed after the run)."""
        chosen = self.parameterAsString(parameters, self.TRAINING_FOLDER, context)
        if chosen and chosen != "TEMPORARY_OUTPUT":
            folder = Path(chosen)
            return writable_folder(
                folder, "Training folder (checkpoints, metrics; empty: a temporary folder)"
            ), False
        return Path(output_tempdir(prefix="msgfm-finetune-")), True

    def image_sensors(self, parameters, context, layers) -> List[str]:
        """The sensor of each image layer: named by the user, or guessed from its band count."""
        names = layer_sensors(
            self.parameterAsString(parameters, self.SENSORS, context) or "",
            layers,
            guess=lambda layer: SENSOR_BY_BAND_COUNT.get(layer.bandCount()),
            bands_ok=lambda layer, name: name == "s2" and layer.bandCount() == len(S2_L1C_BANDS),
        )
        if len(set(names)) != len(names):
            raise QgsProcessingException(
                self.tr(
                    "Two image layers are the same sensor ({}): give one layer per "
                    "sensor (merge tiles of one sensor first, e.g. Build Virtual Raster)"
                ).format(", ".join(names))
            )
        return names

    def label_layer(self, parameters, context) -> Tuple[Any, Optional[str]]:
        """``(class raster, None)`` or ``(polygon layer, class field)``, checked."""
        raster = self.parameterAsRasterLayer(parameters, self.LABEL_RASTER, context)
        polygons = self.parameterAsVectorLayer(parameters, self.LABEL_POLYGONS, context)
        field = self.parameterAsString(parameters, self.CLASS_FIELD, context)
        if raster is not None and polygons is not None:
            raise QgsProcessingException(
                self.tr("Choose either a class raster or a polygon layer as labels, not both")
            )
        if raster is None and polygons is None:
            raise QgsProcessingException(
                self.tr(
                    "Choose the labels: a class raster ('Labels: class raster') or a "
                    "polygon layer with a class field ('Labels: polygon layer' and "
                    "'Class field')"
                )
            )
        if raster is not None:
            return raster, None
        if not field:
            raise QgsProcessingException(
                self.tr(
                    "Choose the 'Class field' of the polygon layer '{}': the attribute "
                    "that holds each polygon's class"
                ).format(polygons.name())
            )
        if polygons.fields().indexOf(field) < 0:
            raise QgsProcessingException(
                self.tr(
                    "The polygon layer '{}' has no field '{}' (its fields: {}): choose "
                    "the field that holds each polygon's class"
                ).format(polygons.name(), field, ", ".join(polygons.fields().names()))
            )
        return polygons, field

    def finetune_params(self, parameters, context, task, spec_path, folder, feedback):
        """The ``finetune`` job's parameters (the ``msgfm finetune`` flags)."""
        checkpoint = self.parameterAsFile(parameters, self.CHECKPOINT, context)
        if checkpoint:
            if (
                not Path(checkpoint, "model.safetensors").is_file()
                and not Path(checkpoint, "checkpoint-last", "model.safetensors").is_file()
            ):
                raise QgsProcessingException(
                    self.tr(
                        "The starting checkpoint '{}' holds no msGFM checkpoint "
                        "(model.safetensors + meta.json, or a pretraining output folder "
                        "with checkpoint-last): choose one, or leave it empty for random "
                        "weights"
                    ).format(checkpoint)
                )
            feedback.pushInfo(f"Starting from the encoder of {checkpoint} (its model size)")
        else:
            feedback.pushInfo("No starting checkpoint: the model starts from random weights")
        config = (
            self.parameterAsFile(parameters, self.CONFIG_FILE, context)
            or CONFIGS[self.parameterAsEnum(parameters, self.CONFIG, context)]
        )
        epochs = self.parameterAsInt(parameters, self.EPOCHS, context)
        return {
            "task": task,
            "init": checkpoint or "none",
            "config": config,
            "data": str(spec_path),
            "out": str(folder),
            "max_steps": self.parameterAsInt(parameters, self.MAX_STEPS, context),
            "epochs": epochs or None,
            "batch_size": self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            "val_fraction": self.parameterAsDouble(parameters, self.VAL_FRACTION, context),
            "seed": self.parameterAsInt(parameters, self.SEED, context),
            "device": DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
        }

    # --- the data spec --------------------------------------------------------------------------

    def data_spec(self, task, images, sensors, labels, copies: Path, tile_size: int, context):
        """The finetuning data spec of the layers (absolute paths; files written where needed)."""
        image_entries: Dict[str, Any] = {}
        for layer, sensor in zip(images, sensors):
            path = raster_file(layer, copies, context, f"{self.IMAGES}: {layer.name()}")
            image_entries[sensor] = {"path": path, "bands": image_bands(layer, sensor)}
        label, field = labels
        task_type = get_task(task)
        spec: Dict[str, Any] = {
            "layout": task_type.label_layout,
            "description": (
                f"QGIS layers {', '.join(layer.name() for layer in images)} labelled by "
                f"'{label.name()}'" + (f" field '{field}'" if field else "")
            ),
            "images": image_entries,
            "tile_size": tile_size,
            # Half-tile steps give four times the tiles of a plain grid from the same labels.
            "stride": tile_size // 2,
        }
        if field is None:
            path = raster_file(label, copies, context, f"{self.LABEL_RASTER}: {label.name()}")
            values = raster_classes(path)
            if len(values) < 2:
                raise QgsProcessingException(
                    self.tr(
                        "The class raster '{}' holds {} class(es) ({}) outside its "
                        "nodata: training needs at least two classes"
                    ).format(label.name(), len(values), ", ".join(str(v) for v in values) or "none")
                )
            spec["labels"] = path
        else:
            spec["polygons"] = polygon_file(label, field, copies, context)
            spec["polygon_layer"] = POLYGON_COPY_LAYER
            spec["class_field"] = field
        if task_type.scene_level:  # a scene tile needs a labelled majority
            spec["min_labelled"] = 0.5
        if not any(copies.iterdir()):
            copies.rmdir()
        return spec


def image_bands(layer, sensor: str) -> Optional[List[str]]:
    """How the layer's bands map to the sensor's: None (canonical order) or their names."""
    count = len(get_sensor(sensor).bands)
    names = band_names(layer)
    if layer.bandCount() == count:
        return None
    if sensor == "s2" and layer.bandCount() == len(S2_L1C_BANDS) and not any(names):
        # A 13-band Sentinel-2 layer without band descriptions is taken as L1C in band order.
        return list(S2_L1C_BANDS)
    # Undescribed bands get names no sensor uses, so the reader leaves them out.
    return [name or f"band {index}" for index, name in enumerate(names, start=1)]


def polygon_classes(layer, field: str) -> List[Any]:
    """The distinct non-empty values of the class field; refuses fewer than two."""
    values = [
        v
        for v in layer.uniqueValues(layer.fields().indexOf(field))
        if v is not None and not (hasattr(v, "isNull") and v.isNull()) and str(v).strip() != ""
    ]
    if len(values) < 2:
        raise QgsProcessingException(
            tr(
                "The class field '{}' of '{}' holds {} class(es) ({}): training needs at "
                "least two; choose another field or add polygons of other classes"
            ).format(field, layer.name(), len(values), ", ".join(str(v) for v in values) or "none")
        )
    return values


def raster_classes(path: str) -> List[float]:
    """The distinct values of band 1 outside nodata (an overview first; the full band if needed)."""
    import numpy as np
    from osgeo import gdal

    dataset = gdal.Open(path)
    if dataset is None:
        raise QgsProcessingException(tr("The class raster {} cannot be read").format(path))
    band = dataset.GetRasterBand(1)
    nodata = band.GetNoDataValue()
    width, height = dataset.RasterXSize, dataset.RasterYSize
    shrink = max(1, math.ceil(max(width, height) / CLASS_COUNT_READ_SIDE))
    values = np.array([])
    for factor in sorted({shrink, 1}, reverse=True):
        pixels = band.ReadAsArray(
            buf_xsize=max(1, width // factor), buf_ysize=max(1, height // factor)
        )
        pixels = pixels[np.isfinite(pixels)]
        if nodata is not None:
            pixels = pixels[pixels != nodata]
        values = np.unique(pixels)
        if len(values) >= 2:
            break
    del band
    dataset = None
    return [float(v) for v in values]


def polygon_file(layer, field: str, folder: Path, context) -> str:
    """The layer's polygons as a GeoPackage layer named :data:`POLYGON_COPY_LAYER`.

    A copy rather than the layer's source: the source may be one layer of a multi-layer file
    (``path|layername=NAME``) or carry a QGIS filter (``|subset=...``) that only QGIS applies;
    the copy holds exactly the features QGIS shows, and only the class field.
    """
    target = folder / f"labels_{len(list(folder.iterdir()))}.gpkg"
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = POLYGON_COPY_LAYER
    options.attributes = [layer.fields().indexOf(field)]
    result = QgsVectorFileWriter.writeAsVectorFormatV3(
        layer, str(target), context.transformContext(), options
    )
    if result[0] != QgsVectorFileWriter.NoError or not target.is_file():
        raise QgsProcessingException(
            tr(
                "The polygon layer '{}' could not be written to a GeoPackage ({}); save it as "
                "a GeoPackage and use that"
            ).format(layer.name(), result[1])
        )
    return str(target)
