"""build.py: the plugin zip's layout and contents."""

from __future__ import annotations

import configparser
import zipfile
from pathlib import Path

import build

ROOT = Path(__file__).resolve().parent.parent


def test_zip_layout(tmp_path):
    target = build.build(tmp_path)
    assert target.name == f"msgfm_qgis-{build.read_version()}.zip"
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        metadata = archive.read("msgfm_qgis/metadata.txt").decode()
    assert names, "empty zip"
    assert {name.split("/")[0] for name in names} == {"msgfm_qgis"}  # one root folder
    for required in (
        "msgfm_qgis/__init__.py",
        "msgfm_qgis/metadata.txt",
        "msgfm_qgis/LICENSE",
        "msgfm_qgis/resources/icons/msgfm.svg",
        "msgfm_qgis/lib/backend/__init__.py",
        "msgfm_qgis/lib/backend/export/schema.py",
        "msgfm_qgis/algorithms/model_info.py",
    ):
        assert required in names
    for name in names:
        assert "__pycache__" not in name and not name.endswith(".pyc")
        assert not name.startswith(("msgfm_qgis/tests/", "msgfm_qgis/.venv/", "msgfm_qgis/dist/"))
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(metadata)
    assert parser.get("general", "hasProcessingProvider") == "yes"
    icon = parser.get("general", "icon")
    assert f"msgfm_qgis/{icon}" in names


def test_metadata_has_every_mandatory_key():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "metadata.txt")
    for key in (
        "name",
        "qgisMinimumVersion",
        "description",
        "about",
        "version",
        "author",
        "email",
        "repository",
    ):
        assert parser.get("general", key).strip(), key
    assert parser.get("general", "qgisMinimumVersion") == "3.22"


def test_build_is_reproducible(tmp_path):
    first = build.build(tmp_path / "a").read_bytes()
    second = build.build(tmp_path / "b").read_bytes()
    assert first == second


def test_version_is_single_sourced():
    import backend

    assert backend.__version__ == build.read_version()
