#!/usr/bin/env python3
"""Write the Graphical Modeler models shipped in ``resources/models3/`` with the QGIS API.

The ``.model3`` files are committed; run this after changing a model and commit what it writes:

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/make_models3.py

Models:
    pansharpen_then_segment.model3: msgfm:pansharpen (PAN + MS -> sharpened MS on the PAN grid),
        whose output feeds msgfm:segmentlandcover (a land-cover model over the sharpened bands).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS3_DIR = ROOT / "resources" / "models3"
GROUP = "msGFM"


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
                "An msGFM land-cover model (.onnx) whose input is the sharpened bands; empty: the "
                "bundled one."
            ),
        }
    )

    def model_parameter(definition, x: float, y: float) -> None:
        component = QgsProcessingModelParameter(definition.name())
        component.setPosition(QPointF(x, y))
        model.addModelParameter(definition, component)

    model_parameter(QgsProcessingParameterRasterLayer("pan", "Panchromatic layer"), 120, 60)
    model_parameter(QgsProcessingParameterRasterLayer("ms", "Multispectral layer"), 340, 60)
    for name, label, x in (
        ("pansharpening_model", "Pan-sharpening model (.onnx)", 560),
        ("landcover_model", "Land-cover model (.onnx)", 780),
    ):
        model_parameter(
            QgsProcessingParameterFile(
                name,
                label,
                behavior=QgsProcessingParameterFile.File,
                extension="onnx",
                optional=True,
            ),
            x,
            60,
        )

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
        if definition.defaultValue() is not None:
            child.addParameterSources(
                name,
                [QgsProcessingModelChildParameterSource.fromStaticValue(definition.defaultValue())],
            )


MODELS = {"pansharpen_then_segment": pansharpen_then_segment}


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
