#!/usr/bin/env python3
"""Write the Graphical Modeler models shipped in ``resources/models3/`` with the QGIS API.

The ``.model3`` files are committed; run this after changing a model and commit what it writes:

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/make_models3.py

Models (the provider lists each in the Processing Toolbox, group "Workflows"; inputs keep the order
given here):
    remove_clouds_then_embed.model3: msgfm:removeclouds (S2 + SAR -> cloud-free S2) whose output
        feeds msgfm:extractembeddings; runs with its defaults (the bundled models).
    landcover_and_scenes.model3: msgfm:segmentlandcover and msgfm:classifyscenes on one layer;
        runs with its defaults (the bundled models).
    pansharpen_then_segment.model3: msgfm:pansharpen (PAN + MS -> sharpened MS on the PAN grid),
        whose output feeds msgfm:segmentlandcover. The land-cover model is a required input: it
        must take the sharpened bands, which no bundled land-cover model does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS3_DIR = ROOT / "resources" / "models3"
GROUP = "Workflows"


def pansharpen_then_segment():
    """The model chaining pan-sharpening into land-cover segmentation."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterFile,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.PyQt.QtCore import QPointF

    model = QgsProcessingModelAlgorithm("Pan-sharpen then segment land cover", GROUP, "msgfm")
    model.setHelpContent(
        {
            "ALG_DESC": (
                "Sharpens a multispectral layer to the resolution of a panchromatic layer with an "
                "msGFM pan-sharpening model, then classifies every pixel of the sharpened image "
                "with an msGFM land-cover model. Both outputs take the panchromatic layer's grid."
            ),
            "pan": "The high-resolution single-band panchromatic layer (the output grid).",
            "ms": "The low-resolution multispectral layer of the same scene.",
            "pansharpening_model": "An msGFM pan-sharpening model (.onnx); empty: the bundled one.",
            "landcover_model": (
                "An msGFM land-cover model (.onnx) whose input is the sharpened multispectral "
                "bands (e.g. one finetuned with msGFM > Finetune on them). The bundled land-cover "
                "model takes other imagery (see its help), so this one must be chosen."
            ),
        }
    )

    def model_parameter(definition, x: float, y: float) -> None:
        component = QgsProcessingModelParameter(definition.name())
        component.setPosition(QPointF(x, y))
        model.addModelParameter(definition, component)

    model_parameter(QgsProcessingParameterRasterLayer("pan", "Panchromatic layer"), 120, 60)
    model_parameter(QgsProcessingParameterRasterLayer("ms", "Multispectral layer"), 340, 60)
    for name, label, x, optional in (
        ("pansharpening_model", "Pan-sharpening model (.onnx; empty: the bundled one)", 560, True),
        ("landcover_model", "Land-cover model over the sharpened bands (.onnx)", 780, False),
    ):
        model_parameter(
            QgsProcessingParameterFile(
                name,
                label,
                behavior=QgsProcessingParameterFile.File,
                extension="onnx",
                optional=optional,
            ),
            x,
            60,
        )
    model.setParameterOrder(["pan", "ms", "pansharpening_model", "landcover_model"])

    def from_model(name: str):
        return [QgsProcessingModelChildParameterSource.fromModelParameter(name)]

    def output(child_id: str, name: str, description: str, x: float, y: float):
        result = QgsProcessingModelOutput(name, description)
        result.setChildId(child_id)
        result.setChildOutputName("OUTPUT")
        result.setPosition(QPointF(x, y))
        return result

    sharpen = QgsProcessingModelChildAlgorithm("msgfm:pansharpen")
    sharpen.setChildId("pansharpen")
    sharpen.setDescription("Pan-sharpen")
    sharpen.setPosition(QPointF(330, 200))
    sharpen.addParameterSources("PAN", from_model("pan"))
    sharpen.addParameterSources("MS", from_model("ms"))
    sharpen.addParameterSources("MODEL", from_model("pansharpening_model"))
    static_defaults(sharpen)
    sharpen.setModelOutputs(
        {"pansharpened": output("pansharpen", "pansharpened", "Pan-sharpened", 120, 300)}
    )
    model.addChildAlgorithm(sharpen)

    segment = QgsProcessingModelChildAlgorithm("msgfm:segmentlandcover")
    segment.setChildId("segmentlandcover")
    segment.setDescription("Segment land cover")
    segment.setPosition(QPointF(560, 360))
    segment.addParameterSources(
        "INPUT", [QgsProcessingModelChildParameterSource.fromChildOutput("pansharpen", "OUTPUT")]
    )
    segment.addParameterSources("MODEL", from_model("landcover_model"))
    static_defaults(segment)
    segment.setModelOutputs(
        {"land_cover": output("segmentlandcover", "land_cover", "Land cover", 560, 480)}
    )
    model.addChildAlgorithm(segment)
    return model


def add_input(model, definition, x: float, y: float = 60) -> None:
    """Add ``definition`` as a model input placed at (x, y) on the Modeler's canvas."""
    from qgis.core import QgsProcessingModelParameter
    from qgis.PyQt.QtCore import QPointF

    component = QgsProcessingModelParameter(definition.name())
    component.setPosition(QPointF(x, y))
    model.addModelParameter(definition, component)


def child_step(model, algorithm_id: str, child_id: str, description: str, x, y, sources, outputs):
    """Add a child algorithm with its parameter sources and named model outputs.

    Args:
        sources: child parameter -> model input name, or ``(child id, output)`` of another step.
        outputs: child output -> (model output name, description).
    """
    from qgis.core import (
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
    )
    from qgis.PyQt.QtCore import QPointF

    child = QgsProcessingModelChildAlgorithm(algorithm_id)
    child.setChildId(child_id)
    child.setDescription(description)
    child.setPosition(QPointF(x, y))
    for parameter, source in sources.items():
        if isinstance(source, tuple):
            value = QgsProcessingModelChildParameterSource.fromChildOutput(*source)
        else:
            value = QgsProcessingModelChildParameterSource.fromModelParameter(source)
        child.addParameterSources(parameter, [value])
    static_defaults(child)
    model_outputs = {}
    for index, (child_output, (name, text)) in enumerate(outputs.items()):
        result = QgsProcessingModelOutput(name, text)
        result.setChildId(child_id)
        result.setChildOutputName(child_output)
        result.setPosition(QPointF(x - 200 + 220 * index, y + 120))
        model_outputs[name] = result
    child.setModelOutputs(model_outputs)
    model.addChildAlgorithm(child)


def remove_clouds_then_embed():
    """Cloud-free Sentinel-2 from S2 + SAR, then the embeddings of the cloud-free image."""
    from qgis.core import QgsProcessingModelAlgorithm, QgsProcessingParameterRasterLayer

    model = QgsProcessingModelAlgorithm("Remove clouds then extract embeddings", GROUP, "msgfm")
    model.setHelpContent(
        {
            "ALG_DESC": (
                "Removes clouds from a Sentinel-2 layer with a co-registered Sentinel-1 layer, "
                "then computes the msGFM embeddings of the cloud-free image (for your own "
                "classifications, clustering or similarity search). Both steps use the bundled "
                "models, whose help names the bands they take."
            ),
            "s2": "The cloudy Sentinel-2 layer (the output grid).",
            "sar": "The Sentinel-1 layer (VV, VH in dB) of the same place and time.",
        }
    )
    add_input(model, QgsProcessingParameterRasterLayer("s2", "Cloudy Sentinel-2 layer"), 120)
    add_input(model, QgsProcessingParameterRasterLayer("sar", "SAR layer (VV, VH in dB)"), 340)
    model.setParameterOrder(["s2", "sar"])
    child_step(
        model,
        "msgfm:removeclouds",
        "removeclouds",
        "Remove clouds",
        230,
        200,
        {"S2": "s2", "SAR": "sar"},
        {"OUTPUT": ("cloud_free", "Cloud-free reflectance")},
    )
    child_step(
        model,
        "msgfm:extractembeddings",
        "extractembeddings",
        "Extract embeddings",
        560,
        380,
        {"INPUT": ("removeclouds", "OUTPUT")},
        {"OUTPUT": ("embeddings", "Embeddings"), "PREVIEW": ("preview", "Embedding preview")},
    )
    return model


def landcover_and_scenes():
    """Land cover per pixel and scene classes per window of one layer, with the bundled models."""
    from qgis.core import QgsProcessingModelAlgorithm, QgsProcessingParameterRasterLayer

    model = QgsProcessingModelAlgorithm("Land cover and scene classes", GROUP, "msgfm")
    model.setHelpContent(
        {
            "ALG_DESC": (
                "Classifies every pixel of a layer into land-cover classes and every window into "
                "scene classes, with the bundled segmentation and scene-classification models "
                "(their help names the sensor and bands they take)."
            ),
            "image": "The layer to classify, with the bundled models' bands.",
        }
    )
    add_input(model, QgsProcessingParameterRasterLayer("image", "Image layer"), 300)
    child_step(
        model,
        "msgfm:segmentlandcover",
        "segmentlandcover",
        "Segment land cover",
        180,
        200,
        {"INPUT": "image"},
        {"OUTPUT": ("land_cover", "Land cover")},
    )
    child_step(
        model,
        "msgfm:classifyscenes",
        "classifyscenes",
        "Classify scenes",
        520,
        200,
        {"INPUT": "image"},
        {"OUTPUT": ("scene_classes", "Scene classes")},
    )
    return model


def static_defaults(child) -> None:
    """Give every parameter the child does not take from elsewhere its default, as the Modeler's
    dialog does (a model names every mandatory value, advanced ones included)."""
    from qgis.core import QgsProcessingDestinationParameter, QgsProcessingModelChildParameterSource

    for definition in child.algorithm().parameterDefinitions():
        name = definition.name()
        if name in child.parameterSources() or isinstance(
            definition, QgsProcessingDestinationParameter
        ):
            continue
        if name == "MODEL":
            continue  # left empty: the bundled model, wherever the plugin is installed
        if definition.defaultValue() is not None:
            child.addParameterSources(
                name,
                [QgsProcessingModelChildParameterSource.fromStaticValue(definition.defaultValue())],
            )


MODELS = {
    "remove_clouds_then_embed": remove_clouds_then_embed,
    "landcover_and_scenes": landcover_and_scenes,
    "pansharpen_then_segment": pansharpen_then_segment,
}


def main() -> int:
    # Qt writes XML attributes in hash order: a fixed seed makes the committed file reproducible.
    os.environ.setdefault("QT_HASH_SEED", "0")
    sys.path.insert(0, str(ROOT))
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    from msgfm_qgis.provider import MsgfmProvider

    # Outputs of child algorithms are resolved through the registry: the provider must be in it.
    provider = MsgfmProvider()  # kept referenced: the registry does not own a Python object
    if not QgsApplication.processingRegistry().addProvider(provider):
        raise SystemExit("cannot register the msgfm Processing provider")
    MODELS3_DIR.mkdir(parents=True, exist_ok=True)
    for name, build in MODELS.items():
        model = build()
        problems = model.validate() if hasattr(model, "validate") else (True, [])
        if not problems[0]:
            raise SystemExit(f"model {name} is not valid: {problems[1]}")
        path = MODELS3_DIR / f"{name}.model3"
        if not model.toFile(str(path)):
            raise SystemExit(f"cannot write {path}")
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
