"""How outputs look when they are loaded: paletted class maps, true-colour reflectance, embeddings.

Styles are applied by Processing layer post-processors, which QGIS runs on the main thread once the
output layer is loaded. Processing keeps only a plain pointer to a post-processor, so this module
keeps the Python objects alive (the most recent ones; older runs' layers are long loaded).
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any, Deque, List, Optional, Sequence, Tuple

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsContrastEnhancement,
    QgsFillSymbol,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
    QgsRasterLayer,
    QgsRendererCategory,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

_ALIVE: Deque[QgsProcessingLayerPostProcessorInterface] = deque(maxlen=64)

# Names of the red, green and blue bands: Sentinel-2 and plain RGB. Not Landsat's B1-B7, whose
# numbers mean other bands on each mission.
_RED = ("B04", "RED", "R")
_GREEN = ("B03", "GREEN", "G")
_BLUE = ("B02", "BLUE", "B")


class PalettedClasses(QgsProcessingLayerPostProcessorInterface):
    """Renders band 1 with one colour and label per class of the model."""

    def __init__(self, classes: Sequence[Tuple[int, str, str]]):
        super().__init__()
        self.classes = list(classes)  # (value, name, "#rrggbb")

    def postProcessLayer(self, layer, context, feedback):
        if not isinstance(layer, QgsRasterLayer):
            return
        items = [
            QgsPalettedRasterRenderer.Class(value, QColor(color), name)
            for value, name, color in self.classes
        ]
        layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, items))
        layer.triggerRepaint()


class MultiBandColor(QgsProcessingLayerPostProcessorInterface):
    """Renders three bands as red, green and blue, each stretched between its 2 % and 98 % values."""

    def __init__(self, red: int, green: int, blue: int):
        super().__init__()
        self.bands = (red, green, blue)

    def postProcessLayer(self, layer, context, feedback):
        if not isinstance(layer, QgsRasterLayer) or layer.bandCount() < max(self.bands):
            return
        provider = layer.dataProvider()
        renderer = QgsMultiBandColorRenderer(provider, *self.bands)
        setters = (
            renderer.setRedContrastEnhancement,
            renderer.setGreenContrastEnhancement,
            renderer.setBlueContrastEnhancement,
        )
        for band, setter in zip(self.bands, setters):
            # A percentile cut keeps a few bright clouds or outliers from washing the image out.
            low, high = provider.cumulativeCut(band, 0.02, 0.98, layer.extent(), 250000)
            enhancement = QgsContrastEnhancement(provider.dataType(band))
            enhancement.setContrastEnhancementAlgorithm(
                QgsContrastEnhancement.StretchToMinimumMaximum
            )
            enhancement.setMinimumValue(low)
            enhancement.setMaximumValue(high if high > low else low + 1)
            setter(enhancement)
        layer.setRenderer(renderer)
        layer.triggerRepaint()


def true_color_bands(band_names: Sequence[str]) -> Optional[Tuple[int, int, int]]:
    """1-based indexes of the red, green and blue bands among ``band_names``, or None."""
    keys: List[str] = [re.split(r"[_\-\s]+", name.strip().upper())[-1] for name in band_names]
    found = []
    for aliases in (_RED, _GREEN, _BLUE):
        index = next((keys.index(a) + 1 for a in aliases if a in keys), None)
        if index is None:
            return None
        found.append(index)
    return found[0], found[1], found[2]


class OnTop(QgsProcessingLayerPostProcessorInterface):
    """Applies a style (if any), then moves the loaded layer to the top of its group.

    QGIS inserts a loaded output above the layer selected in the Layers panel, often under
    another input (the cloud-free image under the SAR layer): a result belongs on top.
    """

    def __init__(
        self, style: Optional[QgsProcessingLayerPostProcessorInterface] = None, visible=True
    ):
        super().__init__()
        self.style = style
        self.visible = visible

    def postProcessLayer(self, layer, context, feedback):
        if self.style is not None:
            self.style.postProcessLayer(layer, context, feedback)
        project = context.project() or QgsProject.instance()
        node = project.layerTreeRoot().findLayer(layer.id())
        parent = node.parent() if node is not None else None
        if parent is None:
            return
        if parent.children().index(node) != 0:
            moved = node.clone()
            parent.insertChildNode(0, moved)
            parent.removeChildNode(node)
            node = moved
        node.setItemVisibilityChecked(self.visible)


class SceneWindows(QgsProcessingLayerPostProcessorInterface):
    """Colours each scene window by its most probable class (field ``top1``), see-through."""

    OPACITY = 0.6

    def __init__(self, classes: Sequence[Tuple[int, str, str]]):
        super().__init__()
        self.classes = list(classes)  # (value, name, "#rrggbb")

    def postProcessLayer(self, layer, context, feedback):
        if not isinstance(layer, QgsVectorLayer) or layer.fields().indexOf("top1") < 0:
            return
        categories = []
        for _, name, color in self.classes:
            symbol = QgsFillSymbol.createSimple(
                {"color": color, "outline_color": "#404040", "outline_width": "0.2"}
            )
            categories.append(QgsRendererCategory(name, symbol, name))
        layer.setRenderer(QgsCategorizedSymbolRenderer("top1", categories))
        layer.setOpacity(self.OPACITY)
        layer.triggerRepaint()


def apply_on_load(
    context: QgsProcessingContext,
    destination: str,
    post_processor: Optional[QgsProcessingLayerPostProcessorInterface] = None,
    name: str = "",
    visible: bool = True,
) -> None:
    """When QGIS loads ``destination``: style it with ``post_processor``, put it on top of the
    Layers panel, and name it ``name`` (short, so the panel shows it whole)."""
    if not context.willLoadLayerOnCompletion(destination):
        return
    on_top = OnTop(post_processor, visible)
    _ALIVE.append(on_top)
    details = context.layerToLoadOnCompletionDetails(destination)
    details.setPostProcessor(on_top)
    if name:
        details.name = name


def scene_windows_style(classes: Sequence[Any]) -> SceneWindows:
    """The scene-window polygons coloured by top class, from the model's classes."""
    return SceneWindows([(c.value, c.name, c.color) for c in classes])


def class_style(classes: Sequence[Any]) -> PalettedClasses:
    """A paletted style from the model's :class:`ClassInfo` entries."""
    return PalettedClasses([(c.value, c.name, c.color) for c in classes])


def multiband_style(band_names: Sequence[str]) -> Optional[MultiBandColor]:
    """True colour when the bands are named red/green/blue, else bands 1-3; None for < 3 bands."""
    bands = true_color_bands(band_names)
    if bands is None and len(band_names) >= 3:
        bands = (1, 2, 3)
    return MultiBandColor(*bands) if bands else None
