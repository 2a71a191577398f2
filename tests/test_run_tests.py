"""scripts/run_tests.py: `make test` as two pytest processes that together run every test once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "run_tests.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_the_two_parts_select_every_test_once():
    """Both parts' collections, added, are the whole suite's, and share no test."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import run_tests
    finally:
        sys.path.pop(0)
    parts = []
    for command in run_tests.commands(["--collect-only", "-q", "-m", "not integration"]):
        listed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert listed.returncode == 0, listed.stdout[-2000:]
        parts.append({line for line in listed.stdout.splitlines() if "::" in line})
    assert parts[0] and parts[1] and not parts[0] & parts[1]
    assert all(t.startswith("tests/backend/") for t in parts[1])
    assert any(t.startswith("tests/backend/accept/") for t in parts[0])
    assert not any(t.startswith("tests/backend/accept/") for t in parts[1])
    assert any(t.startswith("tests/msgfm_qgis/") for t in parts[0])
    assert "tests/test_run_tests.py::test_the_two_parts_select_every_test_once" in parts[0]
    whole = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-m",
         "not integration", "tests"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert parts[0] | parts[1] == {line for line in whole.stdout.splitlines() if "::" in line}


def test_a_failing_part_fails_the_run_and_an_empty_part_does_not():
    # Every test file ignored: both parts collect nothing (pytest's 5), which is not a failure
    # (and they collect nothing in a fraction of a second).
    empty = run("--ignore-glob=*test_*.py", "-q")
    assert empty.returncode == 0, empty.stdout[-2000:]
    assert empty.stdout.count("exit 5 after") == 2 and "whole suite" in empty.stdout
    # An unknown option makes both pytest processes stop with a usage error (4).
    bad = run("--no-such-pytest-option")
    assert bad.returncode == 4


def test_each_part_runs_one_thread_unless_told_otherwise(monkeypatch):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import run_tests
    finally:
        sys.path.pop(0)
    for name in run_tests.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert all(run_tests.part_environment()[name] == "1" for name in run_tests.THREAD_VARIABLES)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert run_tests.part_environment()["OMP_NUM_THREADS"] == "2"


def test_the_build_option_is_the_script_s_own_and_never_reaches_pytest():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import run_tests
    finally:
        sys.path.pop(0)
    assert run_tests.split_options(["--build-test-models", "-q", "-x"]) == (True, ["-q", "-x"])
    assert run_tests.split_options(["-m", "not integration"]) == (False, ["-m", "not integration"])
    makefile = (ROOT / "Makefile").read_text()
    # make test fetches the data first and builds the models up front; test-unit does neither.
    assert "run_tests.py --build-test-models" in makefile.split("\ntest:")[1].split("\n\n")[0]
    assert "--build-test-models" not in makefile.split("\ntest-unit:")[1].split("\n\n")[0]
