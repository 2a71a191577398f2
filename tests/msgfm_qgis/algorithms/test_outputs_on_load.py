"""How outputs arrive in the Layers panel: on top of the inputs, short names, styled.

Runs the algorithms as the Processing dialog does (outputs marked to load into the project) and
then QGIS's own result handling, with the layer insertion point below the top layer, as the desktop
has it when an input lower in the panel is selected.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from qgis.core import (
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsFeature,
    QgsGeometry,
    QgsLayerTreeRegistryBridge,
    QgsMultiBandColorRenderer,
    QgsPointXY,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def project_with_layers(msgfm_provider):
    plugins = str(Path(QgsApplication.pkgDataPath()) / "python" / "plugins")
    if plugins not in sys.path:
        sys.path.append(plugins)
    project = QgsProject.instance()
    added = []

    def add(path, name):
        layer = QgsRasterLayer(str(path), name)
        assert layer.isValid()
        project.addMapLayer(layer)
        added.append(layer.id())
        return layer

    yield project, add
    project.removeAllMapLayers()
    project.layerTreeRegistryBridge().setLayerInsertionPoint(
        QgsLayerTreeRegistryBridge.InsertionPoint(project.layerTreeRoot(), 0)
    )


def run_as_dialog(project, algorithm_id, parameters, outputs):
    """Run like the dialog: outputs load into ``project``; then QGIS's result handling."""
    from processing.gui.Postprocessing import handleAlgorithmResults

    for name, path in outputs.items():
        parameters[name] = QgsProcessingOutputLayerDefinition(str(path), project)
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    context.setProject(project)
    results, ok = algorithm.run(parameters, context, feedback)
    assert ok, results
    assert handleAlgorithmResults(algorithm, context, feedback, True, parameters)
    return results


def tree(project):
    return [
        (node.name(), node.itemVisibilityChecked()) for node in project.layerTreeRoot().children()
    ]


def test_cloud_free_image_loads_above_both_inputs(
    project_with_layers, cloud_removal_model, s2_stack, s1_stack, tmp_path
):
    project, add = project_with_layers
    s2 = add(s2_stack, "s2 layer")
    s1 = add(s1_stack, "s1 layer")  # on top of s2
    # The desktop inserts new layers above the selected one: here, s2 (under s1).
    project.layerTreeRegistryBridge().setLayerInsertionPoint(
        QgsLayerTreeRegistryBridge.InsertionPoint(project.layerTreeRoot(), 1)
    )
    run_as_dialog(
        project,
        "msgfm:removeclouds",
        {"S2": s2.id(), "SAR": s1.id(), "MODEL": str(cloud_removal_model)},
        {"OUTPUT": tmp_path / "clear.tif"},
    )
    name = "Cloud-free reflectance — s2 layer (Remove clouds)"
    assert tree(project) == [(name, True), ("s1 layer", True), ("s2 layer", True)]
    clear = project.mapLayersByName(name)[0]
    assert isinstance(clear.renderer(), QgsMultiBandColorRenderer)
    assert (clear.renderer().redBand(), clear.renderer().greenBand()) == (4, 3)


def test_cloud_free_image_without_sar_says_so_in_its_name(
    project_with_layers, s2_only_cloud_removal_model, s2_only_patch, tmp_path
):
    project, add = project_with_layers
    s2 = add(s2_only_patch, "s2 layer")
    run_as_dialog(
        project,
        "msgfm:removeclouds",
        {"S2": s2.id(), "MODEL": str(s2_only_cloud_removal_model)},
        {"OUTPUT": tmp_path / "clear.tif"},
    )
    name = "Cloud-free reflectance (no SAR) — s2 layer (Remove clouds)"
    assert tree(project) == [(name, True), ("s2 layer", True)]


def test_scene_windows_are_coloured_by_top_class_and_see_through(
    project_with_layers, scene_model, sample_data, tmp_path
):
    project, add = project_with_layers
    rgb = add(sample_data / "sar_rgb/rgb_unmasked.tif", "rgb layer")
    run_as_dialog(
        project,
        "msgfm:classifyscenes",
        {"INPUT": rgb.id(), "MODEL": str(scene_model)},
        {"OUTPUT": tmp_path / "scenes.tif", "GRID": tmp_path / "windows.gpkg"},
    )
    names = [name for name, _ in tree(project)]
    # The see-through windows over the opaque class raster: both show.
    assert names == [
        "Scene windows — rgb layer (Classify scenes)",
        "Scene classes — rgb layer (Classify scenes)",
        "rgb layer",
    ]
    windows = project.mapLayersByName(names[0])[0]
    renderer = windows.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer)
    assert renderer.classAttribute() == "top1"
    assert [c.value() for c in renderer.categories()] == ["reddish", "greenish", "bluish"]
    assert renderer.categories()[0].symbol().color().name() == "#d7191c"
    assert windows.opacity() == pytest.approx(0.6)


def test_embeddings_load_hidden_under_a_principal_component_preview(
    project_with_layers, bundled_models, s2_stack, tmp_path
):
    import rasterio

    project, add = project_with_layers
    s2 = add(s2_stack, "s2 layer")
    results = run_as_dialog(
        project,
        "msgfm:extractembeddings",
        {"INPUT": s2.id()},  # the bundled embedding model (the tests' own)
        {"OUTPUT": tmp_path / "embedding.tif", "PREVIEW": tmp_path / "preview.tif"},
    )
    assert tree(project) == [
        ("Embedding preview (PCA) — s2 layer (Extract embeddings)", True),
        ("Embeddings — s2 layer (Extract embeddings)", False),
        ("s2 layer", True),
    ]
    with rasterio.open(results["OUTPUT"]) as embedding, rasterio.open(results["PREVIEW"]) as pca:
        features = embedding.read().reshape(embedding.count, -1).astype(np.float64)
        preview = pca.read().reshape(3, -1).astype(np.float64)
        assert embedding.count > 3 and pca.count == 3
        assert pca.transform == embedding.transform and pca.crs == embedding.crs
    valid = np.all(np.isfinite(features), axis=0)
    centred = features[:, valid] - features[:, valid].mean(axis=1, keepdims=True)
    # The preview holds the projections on the top principal axes: its first component carries
    # the largest variance any single direction of the features can carry.
    top = np.linalg.svd(centred, compute_uv=False)[0] ** 2
    assert np.var(preview[0, valid]) * valid.sum() == pytest.approx(top, rel=1e-3)
    assert np.var(preview[0, valid]) >= np.var(preview[1, valid]) >= np.var(preview[2, valid])


def test_classes_load_over_their_hidden_probabilities_and_runs_stay_apart(
    project_with_layers, probability_model, sample_data, tmp_path
):
    project, add = project_with_layers
    rgb = add(sample_data / "sar_rgb/rgb_unmasked.tif", "rgb layer")
    for run in (1, 2):  # the same run twice: its layers can still be told apart
        run_as_dialog(
            project,
            "msgfm:segmentlandcover",
            {"INPUT": rgb.id(), "MODEL": str(probability_model)},
            {
                "OUTPUT": tmp_path / f"land_cover_{run}.tif",
                "PROBABILITIES": tmp_path / f"land_cover_{run}_probabilities.tif",
            },
        )
    # QGIS loads a run's layers sorted by file name (the probabilities last): the classes still
    # end on top, visible, with the probabilities hidden under them.
    classes, probabilities = "Land cover", "Probabilities"
    run = "— rgb layer (Segment land cover)"
    assert tree(project) == [
        (f"{classes} {run} #2", True),
        (f"{probabilities} {run} #2", False),
        (f"{classes} {run}", True),
        (f"{probabilities} {run}", False),
        ("rgb layer", True),
    ]


def point_layer(project, name: str, raster: QgsRasterLayer, labels) -> QgsVectorLayer:
    """Points in a grid over ``raster``'s inner half, labelled in turn from ``labels`` (field
    ``cover``), added to ``project``."""
    layer = QgsVectorLayer(f"Point?crs={raster.crs().authid()}&field=cover:string", name, "memory")
    extent = raster.extent()
    features = []
    for k in range(16):
        x = extent.xMinimum() + extent.width() * (0.25 + 0.5 * (k % 4) / 3)
        y = extent.yMinimum() + extent.height() * (0.25 + 0.5 * (k // 4) / 3)
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        feature["cover"] = labels[k % len(labels)]
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    project.addMapLayer(layer)
    return layer


def test_examples_stay_above_the_map_made_from_them_and_classes_are_coloured_by_name(
    project_with_layers, bundled_models, s2_stack, tmp_path
):
    project, add = project_with_layers
    s2 = add(s2_stack, "s2 layer")
    points = point_layer(project, "my examples", s2, ["Forest", "Wasser"])
    # The desktop inserts outputs above the selected layer: the raster, under the points.
    project.layerTreeRegistryBridge().setLayerInsertionPoint(
        QgsLayerTreeRegistryBridge.InsertionPoint(project.layerTreeRoot(), 1)
    )
    run_as_dialog(
        project,
        "msgfm:classifywithexamples",
        {"INPUT": s2.id(), "EXAMPLES": points.id(), "CLASS_FIELD": "cover"},
        {"OUTPUT": tmp_path / "cover.tif", "OUTPUT_PROBABILITY": tmp_path / "probability.tif"},
    )
    names = [name for name, _ in tree(project)]
    assert names[0] == "my examples" and names[-1] == "s2 layer", names
    assert tree(project)[1:3] == [(names[1], True), (names[2], False)], tree(project)
    classes = project.mapLayersByName(names[1])[0]
    colours = {c.label: c.color.name() for c in classes.renderer().classes()}
    assert colours == {"Forest": "#1b7837", "Wasser": "#1f78b4"}  # dark green, blue


def test_change_mask_shows_only_the_changes_see_through_over_the_score(
    project_with_layers, bundled_models, s2_stack, tmp_path
):
    from msgfm_qgis.algorithms.detect_change import MASK_OPACITY

    project, add = project_with_layers
    s2 = add(s2_stack, "s2 layer")
    run_as_dialog(
        project,
        "msgfm:detectchange",
        {"BEFORE": s2.id(), "AFTER": s2.id()},
        {"OUTPUT": tmp_path / "change.tif", "OUTPUT_MASK": tmp_path / "mask.tif"},
    )
    names = [name for name, _ in tree(project)]
    assert names[-1] == "s2 layer" and all(visible for _, visible in tree(project))
    assert names[0].startswith("Change mask") and names[1].startswith("Change score"), names
    mask = project.mapLayersByName(names[0])[0].renderer()
    assert mask.type() == "paletted" and mask.opacity() == pytest.approx(MASK_OPACITY)
    alpha = {c.label: c.color.alpha() for c in mask.classes()}
    assert alpha == {"no change": 0, "change": 255}
