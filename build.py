#!/usr/bin/env python3
"""Build the installable QGIS plugin zip: ``dist/msgfm_qgis-<version>.zip``.

The zip has one root folder, ``msgfm_qgis/``, holding the plugin code, the backend it runs
(``msgfm_qgis/lib/backend``, which the plugin puts on ``sys.path``), ``resources/`` (icons, bundled models), ``metadata.txt`` and ``LICENSE`` —
the layout QGIS's "Install from ZIP" and the plugin repository expect.

Usage: python build.py [--out-dir dist]
"""

from __future__ import annotations

import argparse
import configparser
import os
import sys
import zipfile
from pathlib import Path
from typing import Iterator, Tuple

ROOT = Path(__file__).resolve().parent
PLUGIN_NAME = "msgfm_qgis"
# Source folder -> folder inside the plugin root.
TREES = (("msgfm_qgis", ""), ("backend", "lib/backend"), ("resources", "resources"))
FILES = ("metadata.txt", "LICENSE")
EXCLUDED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".git"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}
# The QGIS plugin repository refuses larger uploads.
SIZE_LIMIT_BYTES = 25 * 1024 * 1024


def read_version(root: Path = ROOT) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(root / "metadata.txt", encoding="utf-8"):
        raise SystemExit("build.py: metadata.txt not found")
    return parser.get("general", "version")


def plugin_files(root: Path = ROOT) -> Iterator[Tuple[Path, str]]:
    """Yield (source path, path inside the zip) for every file the plugin ships, sorted."""
    for source, target in TREES:
        base = root / source
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS)
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                if path.suffix in EXCLUDED_SUFFIXES or filename.startswith("."):
                    continue
                relative = path.relative_to(base).as_posix()
                inner = f"{target}/{relative}" if target else relative
                yield path, f"{PLUGIN_NAME}/{inner}"
    for name in FILES:
        yield root / name, f"{PLUGIN_NAME}/{name}"


def build(out_dir: Path, root: Path = ROOT) -> Path:
    """Write the zip atomically and return its path."""
    version = read_version(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PLUGIN_NAME}-{version}.zip"
    partial = target.with_suffix(".zip.partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path, arcname in plugin_files(root):
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
    args = parser.parse_args(argv)
    target = build(args.out_dir)
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
