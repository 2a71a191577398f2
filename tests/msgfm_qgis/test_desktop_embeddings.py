"""The Embeddings algorithms in a real QGIS desktop window under Xvfb: run, load, style, look.

With ``MSGFM_UPDATE_SCREENSHOTS=1`` the screenshots replace ``docs/img/embeddings-*.jpg`` (the user
guide's pictures of each output).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ..embedtools_scenes import make_scenes
from .test_desktop import QGIS, XVFB, install_plugin, run_desktop

ROOT = Path(__file__).resolve().parents[2]
STARTUP = Path(__file__).with_name("desktop_embeddings.py")
TIMEOUT_S = 540  # four algorithms, each running the encoder, on a shared CPU

pytestmark = pytest.mark.skipif(
    XVFB is None or not QGIS.exists(), reason="needs Xvfb and the QGIS desktop (make setup)"
)


def test_embedding_outputs_load_styled_in_the_qgis_desktop(
    sample_data, owned_bundled_models, tmp_path
):
    scenes = make_scenes(sample_data, tmp_path / "scenes")
    env = install_plugin(tmp_path, owned_bundled_models)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    vegetation = f"{scenes.train_points}|layername=cover|subset=\"cover\" = 'vegetation'"
    runs = [
        (
            "classifywithexamples",
            "msgfm:classifywithexamples",
            {
                "INPUT": str(scenes.stack),
                "EXAMPLES": str(scenes.train_points),
                "CLASS_FIELD": "cover",
                "OUTPUT": str(tmp_path / "cover.tif"),
            },
        ),
        (
            "findsimilar",
            "msgfm:findsimilar",
            {
                "INPUT": str(scenes.stack),
                "REFERENCE": vegetation,
                "OUTPUT": str(tmp_path / "similar.tif"),
            },
        ),
        (
            "clusterembeddings",
            "msgfm:clusterembeddings",
            {"INPUT": str(scenes.stack), "CLUSTERS": 6, "OUTPUT": str(tmp_path / "clusters.tif")},
        ),
        (
            "detectchange",
            "msgfm:detectchange",
            {
                "BEFORE": str(scenes.stack),
                "AFTER": str(scenes.pasted),
                "OUTPUT": str(tmp_path / "change.tif"),
            },
        ),
    ]
    config = {
        "report": str(tmp_path / "report.json"),
        "screenshots": str(shots),
        "scene": str(scenes.stack),
        "runs": runs,
    }
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    env["MSGFM_DESKTOP_CONFIG"] = str(tmp_path / "config.json")
    log = run_desktop(env, STARTUP, tmp_path, TIMEOUT_S)
    report_path = Path(config["report"])
    assert report_path.exists(), f"the startup script wrote no report; QGIS output: {log}"
    report = json.loads(report_path.read_text())
    assert "errors" not in report, report["errors"]
    renderers = {name: item["renderer"] for name, item in report["outputs"].items()}
    # The styles the algorithms set are applied when the outputs load.
    assert renderers == {
        "classifywithexamples": "paletted",
        "findsimilar": "singlebandpseudocolor",
        "clusterembeddings": "paletted",
        "detectchange": "singlebandpseudocolor",
    }
    from qgis.PyQt.QtGui import QImage

    for name, item in report["outputs"].items():
        image = QImage(item["screenshot"])
        assert image.width() >= 800 and image.height() >= 500, name
        pixels = image.convertToFormat(QImage.Format_RGB32)
        buffer = pixels.constBits()
        buffer.setsize(pixels.sizeInBytes())
        rgb = np.frombuffer(buffer, np.uint8).reshape(pixels.height(), pixels.bytesPerLine())
        assert rgb.std() > 20, name  # not blank
        if os.environ.get("MSGFM_UPDATE_SCREENSHOTS") == "1":
            target = ROOT / "docs" / "img" / f"embeddings-{name}.jpg"
            assert image.save(str(target), "JPG", 80)
