"""Products through the inference engine: the same harmonised values, the right model or a refusal.

The bundled Sentinel-2 embedding model (the tests' own, tests/bundled_models.py) runs on one scene given as a SAFE of processing baseline
02.04, as a SAFE of baseline 04.00 (DN shifted by +1000, RADIO_ADD_OFFSET -1000) and as its separate
band files: the embeddings agree. Products of another sensor are refused before any work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.inference.engine import run_inference
from backend.inference.errors import InputMismatchError
from backend.inference.inputs import RasterInput


@pytest.fixture
def embed(owned_bundled_models):
    def run(source, out: Path):
        model = owned_bundled_models / "embedding.onnx"
        return run_inference(model, [RasterInput("s2", source)], out, device="cpu")

    return run


def read(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.read(masked=True)


def test_a_safe_of_either_baseline_and_its_band_files_give_the_same_embeddings(
    sentinel2_products, embed, tmp_path
):
    runs = {}
    for name in ("l1c_0204", "l1c_0400", "l1c_bands"):
        result = embed(sentinel2_products[name], tmp_path / f"{name}.tif")
        runs[name] = read(tmp_path / f"{name}.tif")
        assert "found by name" in result.inputs[0] and "B10" not in result.inputs[0].split(";")[0]
    assert np.ma.count(runs["l1c_0204"]) > 0
    np.testing.assert_array_equal(runs["l1c_0204"], runs["l1c_0400"])
    np.testing.assert_allclose(runs["l1c_0204"], runs["l1c_bands"], atol=1e-5)
    # The two products' files differ by the offset: equal embeddings mean it was applied.
    dn = [
        read(next(Path(sentinel2_products[name]).rglob("*_B02.jp2")))
        for name in ("l1c_0204", "l1c_0400")
    ]
    valid = ~np.ma.getmaskarray(dn[0]) & (dn[0] > 0)
    np.testing.assert_array_equal((dn[1] - dn[0])[valid], 1000)


def test_products_of_another_sensor_are_refused_before_any_work(
    sentinel2_products, landsat_products, owned_bundled_models, embed, tmp_path
):
    segmentation = owned_bundled_models / "segmentation.onnx"
    with pytest.raises(InputMismatchError, match="another sensor"):
        run_inference(
            segmentation, [RasterInput("landsat", sentinel2_products["l1c_0400"])], tmp_path / "s"
        )
    level2 = landsat_products["l2"]
    with pytest.raises(InputMismatchError, match=r"another sensor"):
        embed(level2, tmp_path / "e.tif")
    assert list(tmp_path.iterdir()) == []
