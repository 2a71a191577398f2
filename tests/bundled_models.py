"""The tests' own bundled models: a folder laid out like ``resources/models``, made by the recipe.

The shipped models change (retrained, or moved out by ``msgfm accept --gate`` when they fail
acceptance), so no test runs them. Tests that need "the bundled model" of a task get one made
here by the project's own recipe (:class:`backend.train.defaults.DefaultsRecipe`): the ``tiny``
budget (two pretraining steps, a step or two of finetuning per task) on the real sample data,
with a narrow encoder, exported to ONNX and checked against torch, int8 embedding copies,
``MANIFEST.json`` and the metadata rewrite, exactly as ``make train-defaults`` writes
``resources/models``. The models learn nothing: tests check what the plugin and the engine do with
a model of the right task, sensors, bands and statistics, never the model's skill.

The recipe takes about a minute of CPU; its folder is kept in a cache keyed by every source file
that shapes it (the backend, this file, torch's version), so a session builds it at most once and
a session with unchanged sources reuses the last one.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import shutil
import time
from pathlib import Path
from typing import Dict

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_FILE = "MANIFEST.json"
# The test recipe's encoder: the tiny config's depths with a narrower width than ``lite``, so
# each model is about 1 MB and a tile runs in milliseconds.
CONFIG = {
    "name": "test-bundled",
    "embed_dim": 8,
    "depths": [1, 1, 2, 1],
    "num_heads": [1, 2, 4, 8],
    "num_experts": 2,
}
# Every analysis task's file and the per-sensor embedding models, as the recipe names them.
TASK_FILES = {
    "classification": "classification.onnx",
    "segmentation": "segmentation.onnx",
    "cloud-removal": "cloud-removal.onnx",
    "pansharpening": "pansharpening.onnx",
}
EMBEDDING_FILES = (
    "embedding.onnx",
    "embedding-rgb.onnx",
    "embedding-sar_vv.onnx",
    "embedding-dem.onnx",
    "embedding-landsat.onnx",
)


def cache_key() -> str:
    """A digest of everything the folder depends on: backend sources, this file, torch."""
    import torch

    digest = hashlib.sha256(torch.__version__.encode())
    sources = sorted((ROOT / "backend").rglob("*.py")) + sorted((ROOT / "backend").rglob("*.json"))
    for path in [*sources, Path(__file__)]:
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """``$MSGFM_TEST_MODELS_CACHE``, else ``<msgfm cache>/test-bundled-models``."""
    from backend.data.fetch import cache_root

    chosen = os.environ.get("MSGFM_TEST_MODELS_CACHE")
    return Path(chosen) if chosen else cache_root() / "test-bundled-models"


def build_models(out: Path, samples: Path, work: Path) -> Path:
    """Run the recipe (tiny budget, :data:`CONFIG`) into ``out``; returns ``out``.

    :data:`CONFIG` is registered under its name while the recipe runs (pretraining and finetuning
    run in this process), so the models are named ``msgfm-test-bundled-<task>`` as the shipped ones
    are ``msgfm-lite-<task>``, not after a config file's path.
    """
    from backend.models.config import CONFIGS, ModelConfig
    from backend.train.defaults import DefaultsRecipe

    work.mkdir(parents=True, exist_ok=True)
    CONFIGS[CONFIG["name"]] = lambda: ModelConfig.from_dict(CONFIG)
    try:
        DefaultsRecipe(
            str(out),
            str(work / "runs"),
            budget="tiny",
            config=CONFIG["name"],
            seed=0,
            data_root=str(samples),
            device="cpu",
            command="tests/bundled_models.py: the tests' own models (tiny budget, learn nothing)",
            log=io.StringIO(),
        ).run()
    finally:
        CONFIGS.pop(CONFIG["name"], None)
    return out


def owned_models(samples: Path, scratch: Path) -> Path:
    """The tests' bundled-models folder: from the cache, else built into it (atomically).

    The cached files are read-only: a test that changes a models folder works on
    :func:`copy_models`.
    """
    folder = cache_dir() / cache_key()
    if (folder / MANIFEST_FILE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    # make test runs two pytest processes at once: on a fresh machine both would build the same
    # folder side by side (minutes of CPU each). The second waits for the first under this lock,
    # then finds the folder built.
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / MANIFEST_FILE).is_file():
            _build_into(folder, samples, scratch)
    return folder


def _build_into(folder: Path, samples: Path, scratch: Path) -> None:
    """Build the models into ``folder`` through a staging folder; prune week-old siblings."""
    staging = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    build_models(staging, samples, scratch)
    for path in staging.rglob("*"):
        if path.is_file():
            path.chmod(0o444)
    try:
        os.replace(staging, folder)
    except OSError:  # another session finished first: its folder holds the same models
        shutil.rmtree(staging, ignore_errors=True)
    # Folders of other sources are left alone (other checkouts may be using them) unless a week old.
    week_ago = time.time() - 7 * 24 * 3600
    for old in folder.parent.iterdir():
        if old.name in (folder.name, f".{folder.name}.lock") or old.stat().st_mtime >= week_ago:
            continue
        if old.is_file():  # another source's lock file
            old.unlink(missing_ok=True)
        else:
            for path in old.rglob("*"):
                path.chmod(0o755 if path.is_dir() else 0o644)
            shutil.rmtree(old, ignore_errors=True)


def copy_models(source: Path, target: Path) -> Path:
    """A writable copy of a models folder (tests that change it, e.g. the gate, get their own)."""
    shutil.copytree(source, target)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


# Where the in-process plugin reads its bundled models during a test session (see
# :func:`redirect_plugin`): no folder at all unless a test asks for one.
PLUGIN_MODELS: Dict[str, Path] = {}


def plugin_models_dir() -> Path:
    """What :func:`msgfm_qgis.resources.models_dir` returns during the tests."""
    return PLUGIN_MODELS["folder"]


def redirect_plugin(monkeypatch, folder: Path) -> None:
    """Make the in-process plugin read its bundled models from ``PLUGIN_MODELS["folder"]``,
    first ``folder``.

    Every plugin module that imported :func:`msgfm_qgis.resources.models_dir` holds its own
    reference: each one is replaced; modules imported later take the replacement from
    ``resources``. A test changes the folder with ``monkeypatch.setitem(PLUGIN_MODELS, ...)``.
    """
    import sys

    import msgfm_qgis.resources as resources

    PLUGIN_MODELS["folder"] = Path(folder)
    original = resources.models_dir
    monkeypatch.setattr(resources, "models_dir", plugin_models_dir)
    for name, module in list(sys.modules.items()):
        if name.startswith("msgfm_qgis") and getattr(module, "models_dir", None) is original:
            monkeypatch.setattr(module, "models_dir", plugin_models_dir)
