"""An area of interest (extent or polygons) limits a run to part of a real raster.

The pixel classifier (``probability_model``) works pixel by pixel, so a run over part of the layer
must give the pixels of a run over all of it (up to near ties between two classes, where blending
order can tip the argmax).
"""

from __future__ import annotations

import numpy as np
import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)

ALG = "msgfm:segmentlandcover"
RGB = "rgb/OSBS_029.tif"  # 400 x 400 px at 0.1 m, EPSG:32617


def read(path):
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.read(1), dataset.transform, dataset.nodata


@pytest.fixture(scope="module")
def whole(run_algorithm, probability_model, sample_data, tmp_path_factory):
    """The whole layer's classes, and where they are not near ties."""
    from .test_segment_landcover import expected_classes

    out = tmp_path_factory.mktemp("whole") / "whole.tif"
    run_algorithm(
        ALG, {"INPUT": str(sample_data / RGB), "MODEL": str(probability_model), "OUTPUT": str(out)}
    )
    _, _, clear = expected_classes(sample_data / RGB)
    return (*read(out), clear)


def run_on_area(run_algorithm, model, sample_data, out, **area):
    """Segment the sample RGB raster within ``area`` (AREA_EXTENT and/or AREA_POLYGONS)."""
    parameters = {"INPUT": str(sample_data / RGB), "MODEL": str(model), "OUTPUT": str(out)}
    run_algorithm(ALG, {**parameters, **area})
    return read(out)


def same_classes(part, whole_window, clear):
    return np.array_equal(part[clear], whole_window[clear])


def test_an_extent_limits_the_output_to_its_pixels(
    run_algorithm, probability_model, sample_data, whole, tmp_path
):
    values, transform, _, clear = whole
    # Columns 100-249 and rows 50-199 of the layer, given in the layer's CRS (a hair inside).
    x0, y0 = transform * (100.02, 50.02)
    x1, y1 = transform * (249.98, 199.98)
    extent = f"{x0},{x1},{y1},{y0} [EPSG:32617]"
    part, part_transform, _ = run_on_area(
        run_algorithm, probability_model, sample_data, tmp_path / "part.tif", AREA_EXTENT=extent
    )
    assert part.shape == (150, 150)
    assert part_transform == transform * transform.translation(100, 50)
    assert same_classes(part, values[50:200, 100:250], clear[50:200, 100:250])


def test_polygons_in_another_crs_mask_everything_outside(
    run_algorithm, probability_model, sample_data, whole, tmp_path
):
    values, transform, _, clear = whole
    # A triangle over the middle of the layer, drawn in EPSG:4326.
    to_wgs84 = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem("EPSG:32617"),
        QgsCoordinateReferenceSystem("EPSG:4326"),
        QgsProject.instance(),
    )
    corners = [transform * (c, r) for c, r in ((100, 300), (300, 300), (200, 100))]
    points = [to_wgs84.transform(QgsPointXY(x, y)) for x, y in corners]
    polygons = QgsVectorLayer("Polygon?crs=EPSG:4326", "area layer", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromPolygonXY([points + points[:1]]))
    polygons.dataProvider().addFeatures([feature])
    part, part_transform, nodata = run_on_area(
        run_algorithm, probability_model, sample_data, tmp_path / "tri.tif", AREA_POLYGONS=polygons
    )
    col, row = ~transform * (part_transform.c, part_transform.f)
    col, row = round(col), round(row)
    assert 95 <= col <= 100 and 95 <= row <= 100 and part.shape[0] >= 200
    rows, cols = slice(row, row + part.shape[0]), slice(col, col + part.shape[1])
    inside = part != nodata
    assert 0.4 < inside.mean() < 0.6  # a triangle fills half its bounding box
    assert same_classes(part, values[rows, cols], inside & clear[rows, cols])
    assert not inside[0, 0] and not inside[0, -1]  # the triangle's top corners are outside it


def test_an_area_off_the_layer_is_refused(run_algorithm, probability_model, sample_data, tmp_path):
    with pytest.raises(QgsProcessingException, match="does not overlap 'OSBS_029'"):
        run_algorithm(
            ALG,
            {
                "INPUT": str(sample_data / RGB),
                "MODEL": str(probability_model),
                "OUTPUT": str(tmp_path / "x.tif"),
                "AREA_EXTENT": QgsRectangle(0, 0, 10, 10),
            },
        )
    assert list(tmp_path.iterdir()) == []
