"""msgfm:extractembeddings on a real 400 x 400 LiDAR DEM with a stride-4 embedding model."""

from __future__ import annotations

import numpy as np

from .conftest import DEM_MEAN, DEM_STD, grid, read

ALG = "msgfm:extractembeddings"


def test_stride_4_embeddings(run_algorithm, embedding_model, sample_data, tmp_path):
    import rasterio

    reference = sample_data / "dem/dem.tif"
    out = tmp_path / "embeddings.tif"
    run_algorithm(ALG, {"INPUT": str(reference), "MODEL": str(embedding_model), "OUTPUT": str(out)})
    want, got = grid(reference), grid(out)
    assert got["crs"] == want["crs"]
    a, b, c, d, e, f = want["transform"]
    assert got["transform"] == (a * 4, b, c, d, e * 4, f)
    assert got["size"] == (100, 100) and got["count"] == 2

    with rasterio.open(reference) as dataset:
        dem = dataset.read(1).astype(np.float64)
        valid = dataset.read_masks(1) > 0
    z = (dem - DEM_MEAN) / DEM_STD
    blocks = z.reshape(100, 4, 100, 4)
    full = valid.reshape(100, 4, 100, 4).all(axis=(1, 3))
    embeddings = read(out)
    assert full.sum() > 5000  # most cells are fully valid DEM
    np.testing.assert_allclose(embeddings[0][full], blocks.mean(axis=(1, 3))[full], atol=1e-4)
    np.testing.assert_allclose(
        embeddings[1][full], (blocks**2).mean(axis=(1, 3))[full], rtol=1e-4, atol=1e-4
    )
