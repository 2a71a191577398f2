"""What a user of qgis_process reads: progress lines, each message once, valid JSON results, and
nothing left in the temporary folder or written beside the inputs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ..qgis_process_env import landsat_stack, qgis_environment

pytestmark = pytest.mark.qgis_process


@pytest.fixture(scope="module")
def user_shell(tmp_path_factory, owned_bundled_models):
    root = tmp_path_factory.mktemp("qgis_user")
    return root, qgis_environment(root, owned_bundled_models)


def qgis_process(shell, *args, cwd=None):
    root, env = shell
    return subprocess.run(
        [str(root / "qgis_process"), *args],
        env=env,
        cwd=cwd or root,
        capture_output=True,
        text=True,
        timeout=600,
    )


def strict_json(text: str):
    """``json.loads`` that refuses NaN and Infinity, as every JSON reader but Python's does."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def repeated_lines(stdout: str):
    """Lines the run's log holds more than once (its Inputs and Results listings left out)."""
    inputs_and_log = stdout.partition("\nInputs\n")[2].split("\nResults\n")[0]
    log = inputs_and_log.split("\n\n\n", 1)[1]  # the parameters end with two blank lines
    lines = [line for line in log.splitlines() if line.strip() and not set(line) <= {"-"}]
    return sorted({line for line in lines if lines.count(line) > 1})


def test_the_wrapper_starts_without_library_noise(user_shell):
    result = qgis_process(user_shell, "list")
    assert result.returncode == 0
    assert "msgfm:segmentlandcover" in result.stdout
    assert result.stderr == ""


def test_progress_lines_stand_alone_and_count_up(user_shell, sample_data, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("pan1.tif", "ms1.tif"):
        shutil.copy(sample_data / "pan_ms" / name, inputs / name)
    result = qgis_process(
        user_shell,
        "run",
        "msgfm:pansharpen",
        "--",
        f"PAN={inputs / 'pan1.tif'}",
        f"MS={inputs / 'ms1.tif'}",
        f"OUTPUT={tmp_path / 'sharpened.tif'}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    pattern = re.compile(r"^(\d+)%: (\d+)/(\d+) tiles \((\d+) run, (\d+) skipped as nodata\)$")
    progress = [line for line in result.stdout.splitlines() if " tiles (" in line]
    assert len(progress) >= 5
    counts = []
    for line in progress:
        match = pattern.match(line)
        assert match, f"not a line of its own: {line!r}"
        counts.append(tuple(int(n) for n in match.groups()))
    for column in range(5):
        assert [c[column] for c in counts] == sorted(c[column] for c in counts)
    summary = re.search(r"(\d+) tiles run, (\d+) skipped as nodata", result.stdout)
    assert counts[-1][0] == 100
    assert (counts[-1][3], counts[-1][4]) == (int(summary.group(1)), int(summary.group(2)))
    # QGIS's own bar is printed once, whole, on its own line.
    bars = [line for line in result.stdout.splitlines() if re.search(r"\.\.\.\d", line)]
    assert bars == ["0...10...20...30...40...50...60...70...80...90...100 - done."]
    assert repeated_lines(result.stdout) == []


@pytest.mark.slow
def test_finetune_reports_once_gives_json_and_removes_its_temporary_folder(
    user_shell, sample_data, tmp_path
):
    _, env = user_shell
    labels = sample_data / "landcover" / "strata.tif"
    image = landsat_stack(sample_data, tmp_path)
    out = tmp_path / "landcover.onnx"
    common = ["TASK=0", f"IMAGES={image}", f"LABEL_RASTER={labels}", "EPOCHS=0"]
    result = qgis_process(
        user_shell, "run", "msgfm:finetune", "--", *common, "MAX_STEPS=2", f"OUTPUT={out}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.is_file()
    assert repeated_lines(result.stdout) == []
    metrics = strict_json(re.search(r"^METRICS:\t(.*)$", result.stdout, re.M).group(1))
    assert 0.0 <= metrics["overall_accuracy"] <= 1.0
    assert "Removed the temporary training folder" in result.stdout
    assert list(Path(env["TMPDIR"]).glob("msgfm-*")) == []

    # A run that fails after its folder was made (tiles larger than the image) removes it too.
    failed = qgis_process(
        user_shell, "run", "msgfm:finetune", "--", *common, "MAX_STEPS=2", "TILE_SIZE=1024",
        f"OUTPUT={tmp_path / 'failed.onnx'}",
    )  # fmt: skip
    assert failed.returncode != 0
    assert "msGFM finetune failed" in failed.stderr
    assert list(Path(env["TMPDIR"]).glob("msgfm-*")) == []
