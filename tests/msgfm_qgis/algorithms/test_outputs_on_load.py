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
    QgsLayerTreeRegistryBridge,
    QgsMultiBandColorRenderer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProject,
    QgsRasterLayer,
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
    assert tree(project) == [
        ("Cloud-free reflectance", True),
        ("s1 layer", True),
        ("s2 layer", True),
    ]
    clear = project.mapLayersByName("Cloud-free reflectance")[0]
    assert isinstance(clear.renderer(), QgsMultiBandColorRenderer)
    assert (clear.renderer().redBand(), clear.renderer().greenBand()) == (4, 3)


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
    assert names[-1] == "rgb layer" and set(names[:2]) == {"Scene classes", "Scene windows"}
    windows = project.mapLayersByName("Scene windows")[0]
    renderer = windows.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer)
    assert renderer.classAttribute() == "top1"
    assert [c.value() for c in renderer.categories()] == ["reddish", "greenish", "bluish"]
    assert renderer.categories()[0].symbol().color().name() == "#d7191c"
    assert windows.opacity() == pytest.approx(0.6)
    assert all(len(name) <= 24 for name in names)


def test_embeddings_load_hidden_under_a_principal_component_preview(
    project_with_layers, s2_stack, tmp_path
):
    import rasterio

    project, add = project_with_layers
    s2 = add(s2_stack, "s2 layer")
    results = run_as_dialog(
        project,
        "msgfm:extractembeddings",
        {"INPUT": s2.id()},  # the bundled embedding model
        {"OUTPUT": tmp_path / "embedding.tif", "PREVIEW": tmp_path / "preview.tif"},
    )
    assert [name for name, _ in tree(project)][-1] == "s2 layer"
    visible = dict(tree(project))
    assert visible["Embedding preview (PCA)"] and not visible["Embeddings"]
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
