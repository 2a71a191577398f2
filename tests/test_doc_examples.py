"""Every shell example of README.md and docs/user-guide.md, run as written (budgets cut to a few
steps), so that a doc example cannot rot.

The examples run in a scratch folder laid out like a checkout after ``make build``: ``.venv`` (this
venv, with the ``qgis_process`` wrapper ``scripts/setup.sh`` writes), ``resources/``, ``dist/`` (the
plugin zip), ``plugins/`` (the zip unpacked) and ``data/`` (the files the examples name, made from
the sample data), with an isolated QGIS profile. A block preceded by
``<!-- example: skip (why) -->`` is not run (other platforms, downloads, make targets); one preceded
by ``<!-- example: known-failure (why) -->`` runs and is expected to fail (strictly: once it works,
the test says so and the marker must go).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, NamedTuple

import pytest

from .embedtools_scenes import s2_stack
from .qgis_process_env import demo_inputs, qgis_environment, write_wrapper

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "docs/user-guide.md")
BLOCK = re.compile(
    r"(?:<!-- example: (?P<mark>skip|known-failure) \((?P<why>[^)]*)\) -->\n)?"
    r"```(?:sh|bash)\n(?P<code>.*?)```",
    re.S,
)
# Budgets of the docs (realistic) and of the test (a few steps): each must be found in its block.
BUDGETS = {
    "--max-steps 50": "--max-steps 2",
    "--max-steps 200": "--max-steps 2",
    "MAX_STEPS=200": "MAX_STEPS=2",
    "EPOCHS=5": "EPOCHS=0 MAX_STEPS=2",
}
# What an example names as its result, checked to exist after it ran.
RESULT = re.compile(r"(?:OUTPUT=|--out |land_cover=|scene_classes=)(\S+)")

# The examples run in order in one scratch copy (a block enables the plugin for the next ones):
# make test keeps a test file on one worker (pytest-xdist `--dist loadfile`).
pytestmark = [pytest.mark.qgis_process, pytest.mark.slow]


class Example(NamedTuple):
    doc: str
    line: int
    code: str
    skip: str  # why the block is not run ("" when it is)
    failing: str  # why the block is known to fail ("" when it should work)


def examples() -> List[Example]:
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            mark, why = match.group("mark"), match.group("why") or ""
            skip, failing = (why, "") if mark == "skip" else ("", why)
            found.append(Example(doc, line, match.group("code"), skip, failing))
    return found


def test_the_docs_hold_runnable_examples():
    runnable = [e for e in examples() if not e.skip]
    assert {e.doc for e in runnable} == set(DOCS)
    assert len(runnable) >= 5
    # Only blocks that cannot run here are skipped, each with its reason.
    assert all(len(e.skip) > 10 for e in examples() if e.skip)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, sample_data, owned_bundled_models):
    """A scratch checkout after ``make build``, its ``data/`` and the shell environment.

    Its bundled models (``resources/models`` and the zip's) are the tests' own
    (tests/bundled_models.py): the examples run whichever models ship, or none.
    """
    root = tmp_path_factory.mktemp("checkout")
    # dist/, plugins/, an empty isolated profile (the README's example enables the plugin), TMPDIR
    env = qgis_environment(root, owned_bundled_models, enable=False)
    venv = root / ".venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("pyvenv.cfg", "lib", "lib64", "include"):
        if (Path(sys.prefix) / name).exists():
            (venv / name).symlink_to(Path(sys.prefix) / name)
    for entry in (Path(sys.prefix) / "bin").iterdir():
        if entry.name != "qgis_process":
            (venv / "bin" / entry.name).symlink_to(entry)
    write_wrapper(venv / "bin" / "qgis_process")
    (root / "resources").mkdir()
    for item in (ROOT / "resources").iterdir():
        if item.name != "models":
            (root / "resources" / item.name).symlink_to(item)
    (root / "resources" / "models").symlink_to(owned_bundled_models)
    data = root / "data"
    data.mkdir()
    inputs = demo_inputs()
    inputs.landsat_stack(sample_data, data)
    inputs.cloudy_s2_with_sar(sample_data, data)
    s2_stack(sample_data, data)
    for source, name in [
        ("landcover/strata.tif", "strata.tif"),
        ("pan_ms/pan1.tif", "pan1.tif"),
        ("pan_ms/ms1.tif", "ms1.tif"),
        ("rgb/rmnp-rgb.tif", "rgb.tif"),
        ("dem/dem.tif", "dem.tif"),
        ("s2_l1c/s2l1c_ref.gpkg", "s2l1c_ref.gpkg"),
    ]:
        shutil.copy(sample_data / source, data / name)
    # A user's shell after `source .venv/bin/activate`; this checkout's code for `msgfm`.
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(venv))
    env["PYTHONPATH"] = str(ROOT)
    return root, env


@pytest.mark.parametrize(
    "example",
    [
        pytest.param(e, marks=pytest.mark.xfail(strict=True, reason=e.failing)) if e.failing else e
        for e in examples()
        if not e.skip
    ],
    ids=lambda e: f"{e.doc}:{e.line}",
)
def test_example_runs_as_written(checkout, example):
    """The examples run in the order of the docs: the README's enables the plugin for the rest."""
    root, env = checkout
    code = example.code
    for written, budget in BUDGETS.items():
        code = code.replace(written, budget)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{example.doc}:{example.line}\n{result.stdout}\n{result.stderr}"
    for path in RESULT.findall(code):
        assert (root / path).exists(), f"{example.doc}:{example.line} did not write {path}"
