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
