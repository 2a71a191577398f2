"""Per-pixel features: embeddings interpolated at pixel centres, the pixel's bands, nodata."""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import pytest

from backend.embedtools.features import FeatureError, PixelFeatures
from backend.export.schema import InputSpec, ModelMetadata, OutputSpec
from backend.inference import RasterInput

STRIDE = 4


def metadata(channels: int = 2) -> ModelMetadata:
    return ModelMetadata(
        task="embedding",
        inputs=[InputSpec("rgb", "rgb", ["R", "G", "B"], [100.0] * 3, [50.0] * 3)],
        outputs=[
            OutputSpec(
                "embedding",
                "embedding",
                [f"feature_{i}" for i in range(channels)],
                stride=STRIDE,
            )
        ],
        tile_size=16,
        default_overlap=0.25,
        model_name="test",
        model_version="0",
    )


def write(path, data, transform, nodata=None):
    import rasterio

    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": "EPSG:32633",
        "transform": transform,
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
    return path


@pytest.fixture
def scene(tmp_path):
    """A 3-band 24 x 20 raster and a 2-feature embedding raster (6 x 5 cells) on its grid."""
    from affine import Affine

    rng = np.random.default_rng(0)
    bands = rng.integers(1, 255, size=(3, 24, 20)).astype(np.uint16)
    transform = Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0)
    rows, cols = np.mgrid[0:6, 0:5].astype(np.float32)
    cells = np.stack([rows * 2.0 + cols, -cols]).astype(np.float32)  # linear in the cell position
    image = write(tmp_path / "image.tif", bands, transform)
    embedding = write(tmp_path / "embedding.tif", cells, transform * Affine.scale(STRIDE), np.nan)
    return image, embedding, bands, cells


def test_bilinear_between_cell_centres_and_normalised_bands(scene):
    image, embedding, bands, _ = scene
    with ExitStack() as stack:
        features = PixelFeatures(embedding, RasterInput("rgb", image), metadata(), stack)
        block, valid = features.block(0, 0, 24, 20)
    assert block.shape == (2 + 3, 24, 20) and valid.all()
    # Cell i's centre is at pixel (i + 0.5) * 4 - 0.5: between the centres the features are the
    # linear function of position the cells hold; beyond the outer centres the edge cell's value.
    position_r = np.clip((np.arange(24) + 0.5) / STRIDE - 0.5, 0, 5)
    position_c = np.clip((np.arange(20) + 0.5) / STRIDE - 0.5, 0, 4)
    expected = position_r[:, None] * 2.0 + position_c[None, :]
    np.testing.assert_allclose(block[0], expected, atol=1e-5)
    np.testing.assert_allclose(block[1], -np.broadcast_to(position_c, (24, 20)), atol=1e-5)
    np.testing.assert_allclose(block[2:], (bands - 100.0) / 50.0, atol=1e-5)


def test_points_read_the_same_features_as_blocks(scene):
    image, embedding, _, _ = scene
    rng = np.random.default_rng(1)
    rows, cols = rng.integers(0, 24, 50), rng.integers(0, 20, 50)
    with ExitStack() as stack:
        features = PixelFeatures(embedding, RasterInput("rgb", image), metadata(), stack)
        block, _ = features.block(0, 0, 24, 20)
        points, valid = features.at(rows, cols)
    assert valid.all()
    np.testing.assert_allclose(points, block[:, rows, cols].T, atol=1e-5)


def test_nodata_cells_are_skipped_and_nodata_pixels_are_invalid(scene, tmp_path):
    image, embedding, bands, cells = scene
    from affine import Affine

    holes = cells.copy()
    holes[:, 2, 2] = np.nan  # one cell without embedding
    transform = Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0)
    embedding = write(tmp_path / "holes.tif", holes, transform * Affine.scale(STRIDE), np.nan)
    masked = bands.copy()
    masked[:, 0, 0] = 0
    image = write(tmp_path / "masked.tif", masked, transform, nodata=0)
    with ExitStack() as stack:
        features = PixelFeatures(embedding, RasterInput("rgb", image), metadata(), stack)
        block, valid = features.block(0, 0, 24, 20)
    assert not valid[0, 0] and valid.sum() == 24 * 20 - 1
    assert np.isfinite(block).all()
    # Pixel (10, 10) sits at cell position (2.125, 2.125): the hole (2, 2) would weigh 0.766; the
    # other three cells (values 7, 8, 9) share the weight in their proportions.
    w = np.array([0.875 * 0.125, 0.125 * 0.875, 0.125 * 0.125])
    assert block[0, 10, 10] == pytest.approx((w @ [7.0, 8.0, 9.0]) / w.sum(), abs=1e-5)


def test_an_embedding_raster_of_another_grid_is_refused(scene):
    image, embedding, _, _ = scene
    wrong = metadata()
    wrong.outputs[0].stride = 8
    with ExitStack() as stack, pytest.raises(FeatureError, match="not 3 x 2 for a stride of 8"):
        PixelFeatures(embedding, RasterInput("rgb", image), wrong, stack)
