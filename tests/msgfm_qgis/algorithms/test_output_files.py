"""Output files of the analysis algorithms on disk: modes, unwritable folders, killed runs' leftovers.

Runs msgfm:segmentlandcover and msgfm:modelinfo through Processing on a real RGB raster.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException

from backend.run_scratch import owner_tag

ALG = "msgfm:segmentlandcover"


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield 0o027
    os.umask(previous)


def test_outputs_get_the_mode_the_umask_gives(
    run_algorithm, probability_model, sample_data, tmp_path, umask_027
):
    out, report = tmp_path / "landcover.tif", tmp_path / "model.json"
    run_algorithm(
        ALG,
        {
            "INPUT": str(sample_data / "rgb/rmnp-rgb.tif"),
            "MODEL": str(probability_model),
            "OUTPUT": str(out),
        },
    )
    run_algorithm("msgfm:modelinfo", {"MODEL": str(probability_model), "OUTPUT": str(report)})
    for path in (out, report):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


def test_unwritable_output_folder_is_a_clear_error(
    run_algorithm, probability_model, sample_data, tmp_path
):
    if os.geteuid() == 0:
        folder = Path("/sys")  # root ignores file modes; sysfs refuses new files even to root
    else:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
    params = {
        "INPUT": str(sample_data / "rgb/rmnp-rgb.tif"),
        "MODEL": str(probability_model),
        "OUTPUT": str(folder / "landcover.tif"),
    }
    with pytest.raises(QgsProcessingException, match=f"Cannot write to the folder {folder} for"):
        run_algorithm(ALG, params)
    params["OUTPUT"] = str(tmp_path / "a-file.tif" / "landcover.tif")
    (tmp_path / "a-file.tif").write_text("not a folder")
    with pytest.raises(QgsProcessingException, match="Cannot create the folder"):
        run_algorithm(ALG, params)


def test_leftovers_of_killed_runs_are_removed_by_the_next(
    run_algorithm, probability_model, sample_data, tmp_path
):
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = owner_tag().rsplit("-p", 1)[0] + f"-p{int(ended.stdout)}"
    # What a run killed with SIGKILL leaves: its staging folder beside the output, its partial
    # GeoTIFF, and its folder of layer copies in the temp folder.
    staging = tmp_path / f".msgfm-{dead}-abcd"
    staging.mkdir()
    (staging / "output.tif").write_bytes(b"partial")
    partial = tmp_path / f".landcover.{dead}.x1y2.partial.tif"
    partial.write_bytes(b"partial")
    copies = Path(tempfile.gettempdir()) / f"msgfm-layers-{dead}-abcd"
    copies.mkdir()
    live = Path(tempfile.mkdtemp(prefix=f"msgfm-layers-{owner_tag()}-"))  # a run in progress
    try:
        run_algorithm(
            ALG,
            {
                "INPUT": str(sample_data / "rgb/rmnp-rgb.tif"),
                "MODEL": str(probability_model),
                "OUTPUT": str(tmp_path / "landcover.tif"),
            },
        )
        assert not staging.exists() and not partial.exists() and not copies.exists()
        assert live.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "landcover.tif",
            "landcover.tif.aux.xml",
        ]
        assert not list(Path(tempfile.gettempdir()).glob(f"msgfm-layers-{dead}-*"))
    finally:
        live.rmdir()
        if copies.exists():
            copies.rmdir()
