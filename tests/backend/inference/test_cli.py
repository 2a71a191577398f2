"""`msgfm predict` on real rasters, and the engine's import hygiene (no torch, light CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from backend.cli import main

from .conftest import read_raster

ROOT = str(Path(__file__).resolve().parents[3])


def test_predict_writes_the_output_and_prints_the_result(
    model_factory, sample_data, tmp_path, capsys
):
    model = model_factory("identity", bands=3, tile=64)
    rgb = sample_data / "rgb/rmnp-rgb.tif"
    out = tmp_path / "out.tif"
    args = ["predict", "--model", str(model), "--input", f"s2={rgb}:3,2,1", "--out", str(out)]
    code = main([*args, "--tile", "96", "--overlap", "0.25", "--batch", "3", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0
    result = json.loads(captured.out)
    assert result["outputs"] == [str(out)]
    assert result["tile_size"] == 96 and result["overlap"] == 24 and result["batch_size"] == 3
    assert "100%" in captured.err
    source, got = read_raster(rgb), read_raster(out)
    valid = np.all(source != 255, axis=0)
    np.testing.assert_allclose(got[0][valid], source[2][valid], atol=1e-3)


def test_predict_reports_bad_input_without_a_traceback(
    model_factory, sample_data, tmp_path, capsys
):
    model = model_factory("identity", bands=3, tile=64)
    args = ["predict", "--model", str(model), "--out", str(tmp_path / "o.tif")]
    code = main([*args, "--input", f"s2={sample_data / 'dem/dem.tif'}"])
    err = capsys.readouterr().err
    assert code == 1
    assert "msgfm predict: input 's2' (dem.tif) has 1 band but the model's 's2' input" in err
    assert "Traceback" not in err
    assert not (tmp_path / "o.tif").exists()


def test_engine_never_imports_torch_and_the_cli_stays_light(model_factory, sample_data, tmp_path):
    model = model_factory("identity", bands=1, tile=64)
    script = f"""
import sys
import backend.cli, backend.inference.cli
light = not any(m in sys.modules for m in ("onnxruntime", "rasterio", "torch"))
from backend.inference.engine import run_inference
from backend.inference.inputs import RasterInput
run_inference({str(model)!r}, [RasterInput("s2", {str(sample_data / "dem/dem.tif")!r})],
              {str(tmp_path / "o.tif")!r})
print(light, "torch" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]


S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def _sar_nudge_model(path: Path, sar_optional: bool) -> Path:
    """S2 + SAR -> S2 reflectance: normalised S2 + 0.1 x mean of the normalised VV, VH. Fed as
    training fed S2-only samples (SAR 0 after normalisation), it returns its S2 input."""
    import torch

    from ...onnx_models import export_with_metadata, input_spec, reflectance_output

    class SarNudge(torch.nn.Module):
        def forward(self, s2, sar):
            return s2 + 0.1 * sar.mean(dim=1, keepdim=True)

    inputs = [
        input_spec("s2", "s2", S2_BANDS, 1000.0, 1000.0),
        input_spec("sar", "sar", ["VV", "VH"], -15.0, 5.0, optional=sar_optional),
    ]
    output = reflectance_output(S2_BANDS, 1000.0, 1000.0, sensor="s2")
    return export_with_metadata(SarNudge(), path, inputs, [output], 32, "cloud-removal")


def _s2_only_patch(sample_data: Path, out: Path) -> Path:
    """A real BigEarthNet S2 patch that has no S1 partner, as one 12-band VRT."""
    from osgeo import gdal

    folder = next((sample_data / "bigearthnet_extra" / "S2").glob("*_32_39"))
    files = [str(next(folder.glob(f"*_{band}.tif"))) for band in S2_BANDS]
    dataset = gdal.BuildVRT(str(out), files, separate=True)
    for index, band in enumerate(S2_BANDS, start=1):
        dataset.GetRasterBand(index).SetDescription(band)
    dataset = None
    return out


def test_predict_without_sar_for_a_model_trained_with_s2_only_samples(
    sample_data, tmp_path, capsys
):
    import rasterio

    from backend.export.model_summary import summary_lines
    from backend.export.schema import read_model_metadata

    model = _sar_nudge_model(tmp_path / "s2_only.onnx", sar_optional=True)
    lines = summary_lines(read_model_metadata(model))  # what msgfm info and Model information show
    assert any(
        line.startswith("Input 'sar'")
        and line.endswith("optional (trained with samples without it)")
        for line in lines
    )
    s2 = _s2_only_patch(sample_data, tmp_path / "s2.vrt")
    out = tmp_path / "out.tif"
    code = main(["predict", "--model", str(model), "--input", f"s2={s2}", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    result = json.loads(captured.out)
    assert result["absent_inputs"] == ["sar"]
    assert "msgfm predict: ran WITHOUT sar" in captured.err
    np.testing.assert_allclose(read_raster(out), read_raster(s2), rtol=1e-6, atol=0.02)
    with rasterio.open(out) as dataset, rasterio.open(s2) as source:
        assert dataset.tags()["MSGFM_ABSENT_INPUTS"] == "sar"
        assert dataset.transform == source.transform and dataset.crs == source.crs


def test_predict_without_sar_refuses_a_model_not_trained_so(sample_data, tmp_path, capsys):
    model = _sar_nudge_model(tmp_path / "paired_only.onnx", sar_optional=False)
    s2 = _s2_only_patch(sample_data, tmp_path / "s2.vrt")
    out = tmp_path / "out.tif"
    code = main(["predict", "--model", str(model), "--input", f"s2={s2}", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "also needs sar input(s)" in err
    assert "not trained with Sentinel-2 samples without SAR" in err
    assert "give a Sentinel-1 VV/VH raster, or use a cloud-removal model trained with" in err
    assert not out.exists()
