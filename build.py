#!/usr/bin/env python3
"""Build the installable QGIS plugin zip: ``dist/msgfm_qgis-<version>.zip``.

The zip has one root folder, ``msgfm_qgis/``, holding the plugin code, the backend it runs
(``msgfm_qgis/lib/backend``, which the plugin puts on ``sys.path``), ``resources/`` (icons, bundled models), ``metadata.txt`` and ``LICENSE`` —
the layout QGIS's "Install from ZIP" and the plugin repository expect.

Usage: python build.py [--out-dir dist] [--models DIR]

``--models DIR`` ships the models of DIR (a folder laid out like ``resources/models``, with its
MANIFEST.json) instead of ``resources/models``: the tests install zips of their own small models
this way, and a zip can be checked with the models that passed acceptance before the gate moves
the others.
"""

from __future__ import annotations

import argparse
import configparser
import os
import sys
import zipfile
from pathlib import Path
from typing import Iterator, Optional, Tuple

ROOT = Path(__file__).resolve().parent
PLUGIN_NAME = "msgfm_qgis"
# Source folder -> folder inside the plugin root.
TREES = (("msgfm_qgis", ""), ("backend", "lib/backend"), ("resources", "resources"))
FILES = ("metadata.txt", "LICENSE")
EXCLUDED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".git"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}
# The folder of the bundled models inside the source tree (and, under resources/, inside the zip).
MODELS = "resources/models"
# The QGIS plugin repository refuses larger uploads.
SIZE_LIMIT_BYTES = 25 * 1024 * 1024


def read_version(root: Path = ROOT) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(root / "metadata.txt", encoding="utf-8"):
        raise SystemExit("build.py: metadata.txt not found")
    return parser.get("general", "version")


def _tree(base: Path) -> Iterator[Tuple[Path, str]]:
    """(path, path relative to ``base``) of every shipped file under ``base``, sorted."""
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS)
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            if path.suffix in EXCLUDED_SUFFIXES or filename.startswith("."):
                continue
            yield path, path.relative_to(base).as_posix()


def plugin_files(root: Path = ROOT, models: Optional[Path] = None) -> Iterator[Tuple[Path, str]]:
    """Yield (source path, path inside the zip) for every file the plugin ships, sorted.

    Args:
        root: The source tree.
        models: A folder shipped as ``resources/models`` instead of the tree's own.
    """
    for source, target in TREES:
        for path, relative in _tree(root / source):
            inner = f"{target}/{relative}" if target else relative
            if models is not None and f"{source}/{relative}".startswith(MODELS + "/"):
                continue  # the other folder's models are shipped instead
            yield path, f"{PLUGIN_NAME}/{inner}"
        if models is not None and source == MODELS.split("/")[0]:
            for path, relative in _tree(Path(models)):
                yield path, f"{PLUGIN_NAME}/{MODELS}/{relative}"
    for name in FILES:
        yield root / name, f"{PLUGIN_NAME}/{name}"


def build(out_dir: Path, root: Path = ROOT, models: Optional[Path] = None) -> Path:
    """Write the zip atomically and return its path.

    Args:
        out_dir: Folder of the zip (created).
        root: The source tree.
        models: Ship this folder's models as ``resources/models`` (default: the tree's own).
    """
    if models is not None and not (Path(models) / "MANIFEST.json").is_file():
        raise SystemExit(f"build.py: {models} has no MANIFEST.json: not a bundled-models folder")
    version = read_version(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PLUGIN_NAME}-{version}.zip"
    partial = target.with_suffix(".zip.partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path, arcname in plugin_files(root, models):
                # Fixed timestamps make the zip reproducible from the same sources.
                info = zipfile.ZipInfo(arcname, date_time=(2024, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (0o644 & 0xFFFF) << 16
                archive.writestr(info, path.read_bytes())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "dist", help="default: dist/")
    parser.add_argument(
        "--models",
        type=Path,
        default=None,
        help=f"ship this folder's models instead of {MODELS}/ (it needs a MANIFEST.json)",
    )
    args = parser.parse_args(argv)
    target = build(args.out_dir, models=args.models)
    size = target.stat().st_size
    print(f"built {target} ({size / 1e6:.2f} MB)")
    if size > SIZE_LIMIT_BYTES:
        print(
            f"error: the zip exceeds the QGIS plugin repository's {SIZE_LIMIT_BYTES // 2**20} MB limit",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
