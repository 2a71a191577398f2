"""msgfm:pansharpen on a real SpaceNet-6 WorldView-2 pair: PAN 600 x 600 at 0.5 m, MS 300 x 300 at 1 m."""

from __future__ import annotations

import numpy as np
import pytest
from qgis.core import QgsProcessingException

from .conftest import MS_STD, PAN_MEAN, PAN_STD, grid, read

ALG = "msgfm:pansharpen"


def warped_onto(ms_path, pan_path, resampling: str = "cubic") -> np.ndarray:
    """The MS bands resampled onto the PAN grid (cubic: what the engine feeds a pan-sharpening
    model, which was trained on MS upsampled by cubic convolution)."""
    import rasterio
    from rasterio.vrt import WarpedVRT

    with (
        rasterio.open(pan_path) as pan,
        rasterio.open(ms_path) as ms,
        WarpedVRT(
            ms,
            crs=pan.crs,
            transform=pan.transform,
            width=pan.width,
            height=pan.height,
            resampling=rasterio.enums.Resampling[resampling],
        ) as vrt,
    ):
        return vrt.read().astype(np.float64)


def test_sharpened_ms_on_the_pan_grid(run_algorithm, pansharpening_model, sample_data, tmp_path):
    pan, ms = sample_data / "pan_ms/pan1.tif", sample_data / "pan_ms/ms1.tif"
    out = tmp_path / "sharpened.tif"
    run_algorithm(
        ALG, {"PAN": str(pan), "MS": str(ms), "MODEL": str(pansharpening_model), "OUTPUT": str(out)}
    )
    want, got = grid(pan), grid(out)
    assert (got["crs"], got["transform"], got["size"], got["count"]) == (
        want["crs"],
        want["transform"],
        want["size"],
        4,
    )
    sharpened = read(out).astype(np.float64)
    pan_term = (read(pan)[0].astype(np.float64) - PAN_MEAN) / PAN_STD * MS_STD
    # Everything but the resampled MS is exact; the MS comes from the same cubic warp.
    recovered_ms = sharpened - pan_term
    interior = (slice(None), slice(2, -2), slice(2, -2))
    cubic = warped_onto(ms, pan)[interior]
    np.testing.assert_allclose(recovered_ms[interior], cubic, atol=0.5)
    assert np.std(pan_term) > 10 * 0.5  # the PAN detail is far above the tolerance
    # ... and the warp is not the bilinear one that other tasks' second inputs get.
    assert np.abs(warped_onto(ms, pan, "bilinear")[interior] - cubic).max() > 10 * 0.5


def test_a_segmentation_model_is_refused(run_algorithm, probability_model, sample_data, tmp_path):
    with pytest.raises(
        QgsProcessingException,
        match=r"is a segmentation model; use msGFM > Segment land cover, or choose a "
        r"pan-sharpening model",
    ):
        run_algorithm(
            ALG,
            {
                "PAN": str(sample_data / "pan_ms/pan1.tif"),
                "MS": str(sample_data / "pan_ms/ms1.tif"),
                "MODEL": str(probability_model),
                "OUTPUT": str(tmp_path / "x.tif"),
            },
        )


def test_nothing_is_written_beside_the_inputs(
    run_algorithm, pansharpening_model, sample_data, tmp_path
):
    import gc
    import shutil

    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    # Layers opened from file names get a histogram for their default stretch, which GDAL would
    # keep in an .aux.xml beside the file when the run's context frees the layer.
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("pan1.tif", "ms1.tif"):
        shutil.copy(sample_data / "pan_ms" / name, inputs / name)
    context = QgsProcessingContext()
    params = {
        "PAN": str(inputs / "pan1.tif"),
        "MS": str(inputs / "ms1.tif"),
        "MODEL": str(pansharpening_model),
        "OUTPUT": str(tmp_path / "sharpened.tif"),
    }
    run_algorithm(ALG, params, feedback=QgsProcessingFeedback(), context=context)
    del context
    gc.collect()
    assert sorted(p.name for p in inputs.iterdir()) == ["ms1.tif", "pan1.tif"]
