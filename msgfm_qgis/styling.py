"""How outputs look when they are loaded: paletted class maps, true-colour reflectance, embeddings.

Styles are applied by Processing layer post-processors, which QGIS runs on the main thread once the
output layer is loaded. Processing keeps only a plain pointer to a post-processor, so this module
keeps the Python objects alive (the most recent ones; older runs' layers are long loaded).
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsContrastEnhancement,
    QgsFillSymbol,
    QgsLayerTreeGroup,
    QgsLayerTreeLayer,
    QgsLayerTreeNode,
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
NOT_DRAWN = "#00000000"  # a class colour with alpha 0: the class is not drawn
LAST = 9  # rank of outputs loaded without a rank of their own: under the run's other layers

# Names of the red, green and blue bands: Sentinel-2 and plain RGB. Not Landsat's B1-B7, whose
# numbers mean other bands on each mission.
_RED = ("B04", "RED", "R")
_GREEN = ("B03", "GREEN", "G")
_BLUE = ("B02", "BLUE", "B")


class PalettedClasses(QgsProcessingLayerPostProcessorInterface):
    """Renders band 1 with one colour and label per class of the model.

    Args:
        classes: (value, name, colour) per class; the colour "#rrggbb", or "#aarrggbb" with an
            alpha ("#00000000": the class is not drawn).
        opacity: of the whole layer (below 1: the imagery shows through).
    """

    def __init__(self, classes: Sequence[Tuple[int, str, str]], opacity: float = 1.0):
        super().__init__()
        self.classes = list(classes)
        self.opacity = opacity

    def postProcessLayer(self, layer, context, feedback):
        if not isinstance(layer, QgsRasterLayer):
            return
        items = [
            QgsPalettedRasterRenderer.Class(value, QColor(color), name)
            for value, name, color in self.classes
        ]
        renderer = QgsPalettedRasterRenderer(layer.dataProvider(), 1, items)
        renderer.setOpacity(self.opacity)
        layer.setRenderer(renderer)
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


class RunLayers:
    """What the layers one run loads share: their order among themselves, and the input layers
    that stay above them (the reference points a similarity map was made from).

    Attributes:
        keep_above: ids of project layers to keep above this run's layers (same group only).
        ranks: rank (0: top) of each layer of the run already placed, by layer id.
    """

    def __init__(self, keep_above: Sequence[str] = ()):
        self.keep_above = list(keep_above)
        self.ranks: Dict[str, int] = {}


class OnTop(QgsProcessingLayerPostProcessorInterface):
    """Applies a style (if any), then moves the loaded layer to the top of its group.

    QGIS inserts a loaded output above the layer selected in the Layers panel, often under
    another input (the cloud-free image under the SAR layer): a result belongs on top. Among the
    layers of one run, a lower ``rank`` is higher (the class map over its probabilities), whatever
    order QGIS loads them in (it loads them sorted by file name).
    """

    def __init__(
        self,
        style: Optional[QgsProcessingLayerPostProcessorInterface] = None,
        visible=True,
        rank: int = 0,
    ):
        super().__init__()
        self.style = style
        self.visible = visible
        self.rank = rank
        self.run = RunLayers()  # replaced by the run's own at the end of the run

    def postProcessLayer(self, layer, context, feedback):
        if self.style is not None:
            self.style.postProcessLayer(layer, context, feedback)
        project = context.project() or QgsProject.instance()
        root = project.layerTreeRoot()
        node = root.findLayer(layer.id())
        parent = node.parent() if node is not None else None
        if parent is None:
            return
        self.run.ranks[layer.id()] = self.rank
        layer.setName(unique_name(project, layer))
        others = [child for child in parent.children() if child is not node]
        above = [
            index
            for index, child in enumerate(others)
            if isinstance(child, QgsLayerTreeLayer)
            and self.run.ranks.get(child.layerId(), self.rank + 1) <= self.rank
        ]
        # Right under the last of the run's layers that go above it, else at the top.
        node = _move(parent, node, max(above) + 1 if above else 0)
        node.setItemVisibilityChecked(self.visible)
        for layer_id in self.run.keep_above:
            kept = root.findLayer(layer_id)
            if kept is not None and kept.parent() is parent:
                position = parent.children().index(node)
                if parent.children().index(kept) > position:
                    _move(parent, kept, position)


def unique_name(project: QgsProject, layer: Any) -> str:
    """``layer``'s name, numbered (" #2", " #3"...) when another layer of ``project`` has it: the
    same algorithm run again on the same input gives layers that can be told apart."""
    taken = {other.name() for other in project.mapLayers().values() if other.id() != layer.id()}
    name, number = layer.name(), 2
    while name in taken:
        name = f"{layer.name()} #{number}"
        number += 1
    return name


def _move(parent: QgsLayerTreeGroup, node: QgsLayerTreeNode, index: int) -> QgsLayerTreeNode:
    """Put ``node`` at ``index`` among its siblings; returns the node now in the tree.

    The clone goes in before the original comes out: a layer whose node leaves the tree
    altogether is removed from the project.
    """
    children = parent.children()
    current = children.index(node)
    if current == index:
        return node
    moved = node.clone()
    parent.insertChildNode(index + 1 if current < index else index, moved)
    parent.removeChildNode(node)
    return moved


def run_layer_name(name: str, input_name: str, algorithm_name: str) -> str:
    """A loaded output's name: what it is, of which input, by which algorithm; repeated runs on
    other inputs or with other algorithms stay apart in the Layers panel."""
    if input_name:
        return f"{name} \u2014 {input_name} ({algorithm_name})"
    return f"{name} ({algorithm_name})"


def finish_run_layers(
    context: QgsProcessingContext,
    results: Dict[str, Any],
    input_name: str,
    algorithm_name: str,
    keep_above: Sequence[str] = (),
) -> None:
    """At the end of a run: name the outputs it will load after ``input_name`` and the algorithm,
    and have them placed together (see :class:`RunLayers`)."""
    run = RunLayers(keep_above)
    for value in results.values():
        if not isinstance(value, str) or not context.willLoadLayerOnCompletion(value):
            continue
        details = context.layerToLoadOnCompletionDetails(value)
        on_top = details.postProcessor()
        if not isinstance(on_top, OnTop):
            if on_top is not None:
                continue  # someone else's post-processor: left as it is
            on_top = OnTop(rank=LAST)
            _ALIVE.append(on_top)
            details.setPostProcessor(on_top)
        on_top.run = run
        details.name = run_layer_name(details.name, input_name, algorithm_name)


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
    rank: int = 0,
) -> None:
    """When QGIS loads ``destination``: style it with ``post_processor``, put it on top of the
    Layers panel (under the run's layers of a lower ``rank``), and name it ``name`` (short: the
    input and the algorithm are added at the end of the run, see :func:`finish_run_layers`)."""
    if not context.willLoadLayerOnCompletion(destination):
        return
    on_top = OnTop(post_processor, visible, rank)
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
