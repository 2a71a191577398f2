"""Products built once per test session from the real sample data (tests/data/*/data.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2] / "data"


def _generator(name: str):
    spec = importlib.util.spec_from_file_location(f"products_{name}", DATA / name / "data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def sentinel2_products(sample_data, tmp_path_factory) -> Dict[str, Path]:
    """The SAFE products, band files and stack of tests/data/sentinel2_safe."""
    return _generator("sentinel2_safe").generate(tmp_path_factory.mktemp("s2"), sample_data)


@pytest.fixture(scope="session")
def landsat_products(sample_data, tmp_path_factory) -> Dict[str, Path]:
    """The Landsat Collection 2 products of tests/data/landsat_c2."""
    return _generator("landsat_c2").generate(tmp_path_factory.mktemp("landsat"), sample_data)


@pytest.fixture
def workdir(tmp_path) -> Path:
    return tmp_path / "work"


def read(path: str) -> np.ndarray:
    """All bands as float64, nodata as NaN."""
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.read(masked=True).astype(np.float64).filled(np.nan)
