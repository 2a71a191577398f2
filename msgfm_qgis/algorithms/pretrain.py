"""msgfm:pretrain — cross-sensor masked image modelling on a manifest or on raster layers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFolder,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterString,
)

from backend.files import output_tempdir

from ..layers import raster_file
from ..output_folders import writable_folder
from .base import file_parameter, integer_parameter
from .inference_base import DEVICES
from .training_base import CONFIG_LABELS, CONFIGS, TrainingAlgorithm, layer_sensors

SHIPPED_MANIFEST = "samples"


class PretrainAlgorithm(TrainingAlgorithm):
    NAME = "pretrain"
    DISPLAY_NAME = "Pretrain msGFM"
    JOB = "pretrain"

    MANIFEST = "MANIFEST"
    LAYERS = "LAYERS"
    SENSORS = "SENSORS"
    PAIRED = "PAIRED"
    CONFIG = "CONFIG"
    CONFIG_FILE = "CONFIG_FILE"
    MAX_STEPS = "MAX_STEPS"
    BATCH_SIZE = "BATCH_SIZE"
    SEED = "SEED"
    DEVICE = "DEVICE"
    OUTPUT = "OUTPUT"
    CHECKPOINT = "CHECKPOINT"
    MANIFEST_USED = "MANIFEST_USED"
    STEPS = "STEPS"
    LOSS = "LOSS"

    HELP = (
        "Pretrains the msGFM encoder from scratch with cross-sensor masked image modelling "
        "(SimMIM-style reconstruction of masked patches; paired sensors also reconstruct each "
        "other). Runs in a separate Python process that needs torch: set it with the QGIS setting "
        "msgfm/worker_python.\n\n"
        "<b>Pretraining manifest</b>: a JSON file listing the data sources (see the user guide). "
        "Empty, with no layers chosen: the shipped manifest 'samples' over the sample data "
        "(fetched with `msgfm data fetch`).\n"
        "<b>Raster layers</b>: instead of a manifest, train on these layers. "
        "<b>Sensor of each layer</b> names their sensors in layer order (rgb, s2, sar, dsm, pan, "
        "ms, landsat), or one sensor for all; a layer must hold that sensor's bands (or name them "
        "in its band descriptions). With <b>co-registered pair</b> ticked, two layers are one "
        "scene of two sensors (the first is the reference grid) and train cross-sensor "
        "reconstruction. A manifest for the layers is written into the output folder.\n"
        "<b>Model size</b>: small (CPU) or base (the paper's); a model-config JSON file replaces "
        "it.\n"
        "<b>Max steps</b>, <b>Batch size</b>: optimiser steps and crops per step.\n\n"
        "<b>Output folder</b>: checkpoints (checkpoint-last, a resumable safetensors checkpoint), "
        "metrics.jsonl (loss per step) and summary.json. Finetune from checkpoint-last, then "
        "export to ONNX.\n\n"
        "Cancelling stops the training process within seconds; the last saved checkpoint stays."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(
            file_parameter(
                self.MANIFEST,
                self.tr(
                    "Pretraining manifest (.json; empty: the shipped 'samples' or the layers below)"
                ),
                extension="json",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.LAYERS,
                self.tr("Raster layers to pretrain on (instead of a manifest)"),
                layerType=QgsProcessing.TypeRaster,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.SENSORS,
                self.tr("Sensor of each layer, in layer order (e.g. 'rgb, dsm'; one name for all)"),
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                self.PAIRED,
                self.tr(
                    "The two layers are a co-registered pair of sensors (cross-sensor training)"
                ),
                defaultValue=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.CONFIG,
                self.tr("Model size"),
                options=[self.tr(o) for o in CONFIG_LABELS],
                defaultValue=0,
            )
        )
        self.addParameter(
            file_parameter(
                self.CONFIG_FILE,
                self.tr("Model config JSON file (replaces the model size)"),
                extension="json",
                optional=True,
            )
        )
        self.addParameter(
            integer_parameter(
                self.MAX_STEPS,
                self.tr("Max steps (optimiser steps)"),
                1000,
                minimum=1,
            )
        )
        self.addParameter(
            integer_parameter(
                self.BATCH_SIZE,
                self.tr("Batch size (crops per step)"),
                8,
                minimum=1,
            )
        )
        self.add_seed_and_device_parameters()
        self.addParameter(
            QgsProcessingParameterFolderDestination(
                self.OUTPUT, self.tr("Output folder (checkpoints)")
            )
        )
        self.addOutput(QgsProcessingOutputFolder(self.CHECKPOINT, "Last checkpoint"))
        self.addOutput(QgsProcessingOutputString(self.MANIFEST_USED, "Manifest trained on"))
        self.addOutput(QgsProcessingOutputNumber(self.STEPS, "Steps trained"))
        self.addOutput(QgsProcessingOutputNumber(self.LOSS, "Final loss"))

    def processAlgorithm(self, parameters, context, feedback):
        out = Path(self.parameterAsString(parameters, self.OUTPUT, context))
        writable_folder(out, "Output folder")
        manifest = self.manifest(parameters, context, out, feedback)
        config = (
            self.parameterAsFile(parameters, self.CONFIG_FILE, context)
            or CONFIGS[self.parameterAsEnum(parameters, self.CONFIG, context)]
        )
        params = {
            "config": config,
            "manifest": manifest,
            "data_root": None,
            "out": str(out),
            "max_steps": self.parameterAsInt(parameters, self.MAX_STEPS, context),
            "batch_size": self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            "seed": self.parameterAsInt(parameters, self.SEED, context),
            "device": DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
        }
        feedback.pushInfo(
            f"Pretraining model '{config}' on manifest '{manifest}' for {params['max_steps']} "
            f"steps of {params['batch_size']} crops, into {out}"
        )
        result = self.run_training_job({k: v for k, v in params.items() if v is not None}, feedback)
        checkpoint = out / "checkpoint-last"
        if not checkpoint.is_dir():
            raise QgsProcessingException(
                self.tr(
                    "msGFM pretraining ended but wrote no checkpoint in {}; see the log above"
                ).format(out)
            )
        feedback.pushInfo(
            f"Trained {result.get('step')} steps on {result.get('device')}; final loss "
            f"{result.get('loss')}; checkpoint {checkpoint}"
        )
        feedback.setProgress(100)
        return {
            self.OUTPUT: str(out),
            self.CHECKPOINT: str(checkpoint),
            self.MANIFEST_USED: manifest,
            self.STEPS: result.get("step"),
            self.LOSS: result.get("loss"),
        }

    def manifest(self, parameters, context, out: Path, feedback) -> str:
        """The manifest to train on: the chosen file, one written for the layers, or ``samples``."""
        chosen = self.parameterAsFile(parameters, self.MANIFEST, context)
        layers = self.parameterAsLayerList(parameters, self.LAYERS, context)
        if chosen and layers:
            raise QgsProcessingException(
                self.tr(
                    "Choose either a pretraining manifest or raster layers, not both: "
                    "clear 'Pretraining manifest' to train on the layers"
                )
            )
        if chosen:
            if not Path(chosen).is_file():
                raise QgsProcessingException(
                    self.tr(
                        "The pretraining manifest {} does not exist; choose a manifest JSON file"
                    ).format(chosen)
                )
            return chosen
        if not layers:
            return SHIPPED_MANIFEST
        sensors = layer_sensors(
            self.parameterAsString(parameters, self.SENSORS, context) or "", layers
        )
        paired = self.parameterAsBoolean(parameters, self.PAIRED, context)
        if paired and len(layers) != 2:
            raise QgsProcessingException(
                self.tr(
                    "A co-registered pair needs exactly two layers, {} are chosen: "
                    "choose two, or untick the pair option"
                ).format(len(layers))
            )
        if paired and sensors[0] == sensors[1]:
            raise QgsProcessingException(
                self.tr(
                    "Both layers of the pair are '{}': a pair joins two different sensors"
                ).format(sensors[0])
            )
        copies = Path(output_tempdir(out, "inputs-"))
        entries = []
        for layer, sensor in zip(layers, sensors):
            label = f"{self.LAYERS}: {layer.name()}"
            entries.append((layer, sensor, raster_file(layer, copies, context, label)))
        if not any(copies.iterdir()):
            copies.rmdir()
        document = manifest_document(entries, paired)
        path = out / "manifest.json"
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        feedback.pushInfo(f"Wrote the manifest for {len(layers)} layer(s): {path}")
        return str(path)


def manifest_document(entries, paired: bool) -> Dict[str, Any]:
    """A pretraining manifest for ``(layer, sensor, file)`` entries: one source per layer, or one
    paired source (first layer the reference grid). Paths are absolute, so any root works."""
    if paired:
        sources = [
            {
                "name": "_".join(f"{sensor}_{layer.name()}" for layer, sensor, _ in entries),
                "layout": "files",
                "sensors": {sensor: {"path": path} for _, sensor, path in entries},
            }
        ]
    else:
        sources = [
            {
                "name": f"{sensor}_{index}_{layer.name()}",
                "layout": "files",
                "sensors": {sensor: {"path": path}},
            }
            for index, (layer, sensor, path) in enumerate(entries)
        ]
    return {
        "name": "qgis_layers",
        "description": "Written by msgfm:pretrain for the chosen QGIS layers.",
        "root": None,
        "sources": sources,
    }
