"""ONNX Runtime's optimised model is cached between runs, safely, and never stands in the way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.export.schema import read_model_metadata
from backend.inference.session import create_session

from .conftest import read_raster

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("MSGFM_ORT_CACHE", str(folder))
    return folder


@pytest.fixture
def model(model_factory) -> Path:
    return model_factory("boxmean", bands=1, tile=32, mean=400.0, std=10.0)


def _dem_tiles(sample_data) -> np.ndarray:
    """Four real 32 px tiles of the lidar DEM, normalised as the model expects."""
    dem = read_raster(sample_data / "dem/dem.tif", 1)[:32, :128].astype(np.float32)
    tiles = np.stack([dem[:, k * 32 : (k + 1) * 32] for k in range(4)])[:, None]
    return (tiles - 400.0) / 10.0


def _opened_paths(monkeypatch) -> list:
    import onnxruntime

    opened = []
    original = onnxruntime.InferenceSession

    def spy(path, *args, **kwargs):
        opened.append(Path(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", spy)
    return opened


def test_the_second_open_uses_the_cached_optimised_model(cache, model, sample_data, monkeypatch):
    tiles = _dem_tiles(sample_data)
    first, _ = create_session(model, "cpu", 1, batch_size=4)
    cached = list(cache.glob("*.ort"))
    assert len(cached) == 1 and not list(cache.glob(".*"))  # no temporary file left
    opened = _opened_paths(monkeypatch)
    second, provider = create_session(model, "cpu", 1, batch_size=4)
    assert opened == [cached[0]] and provider == "CPUExecutionProvider"
    # The same model: its metadata, fixed batch and outputs.
    assert read_model_metadata(model, session=second) == read_model_metadata(model)
    assert second.get_inputs()[0].shape[0] == 4
    name = first.get_inputs()[0].name
    np.testing.assert_array_equal(
        first.run(None, {name: tiles})[0], second.run(None, {name: tiles})[0]
    )
    # Another batch size is another optimised graph; so is dynamic batch.
    create_session(model, "cpu", 1, batch_size=2)
    create_session(model, "cpu", 1)
    assert len(list(cache.glob("*.ort"))) == 3


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_cached_file_is_ignored_and_written_again(
    cache, model, sample_data, monkeypatch, damage
):
    create_session(model, "cpu", 1, batch_size=4)
    (cached,) = cache.glob("*.ort")
    good = cached.read_bytes()
    damaged = b"not a model" * 100 if damage == "garbage" else good[: len(good) // 2]
    cached.write_bytes(damaged)
    opened = _opened_paths(monkeypatch)
    session, _ = create_session(model, "cpu", 1, batch_size=4)
    assert opened[0] == cached and opened[-1] == Path(model)  # tried, then rebuilt from the model
    tiles = _dem_tiles(sample_data)
    assert session.run(None, {session.get_inputs()[0].name: tiles})[0].shape == (4, 1, 32, 32)
    # Written again whole: the next open takes it.
    assert cached.read_bytes() != damaged and len(cached.read_bytes()) > len(damaged)
    opened.clear()
    create_session(model, "cpu", 1, batch_size=4)
    assert opened == [cached]


def test_an_unusable_cache_folder_means_a_normal_session(tmp_path, model, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MSGFM_ORT_CACHE", str(blocker / "cache"))
    session, provider = create_session(model, "cpu", 1, batch_size=4)
    assert provider == "CPUExecutionProvider" and session.get_inputs()[0].shape[0] == 4
    monkeypatch.setenv("MSGFM_ORT_CACHE", "off")
    opened = _opened_paths(monkeypatch)
    create_session(model, "cpu", 1, batch_size=4)
    assert opened == [Path(model)]


def test_processes_racing_to_write_the_cache_all_get_a_session(cache, model):
    # Four processes open the model at once on an empty cache: every one gets its session, one
    # whole cached file remains, no temporary file is left, and the next open uses it.
    script = (
        "import sys; from backend.inference.session import create_session; "
        "s, _ = create_session(sys.argv[1], 'cpu', 1, batch_size=4); "
        "print(s.get_inputs()[0].shape[0])"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), MSGFM_ORT_CACHE=str(cache))
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(model)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, [err for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == ["4"] * 4
    assert len(list(cache.glob("*.ort"))) == 1 and not list(cache.glob(".*"))
