"""Run the test suite as two pytest processes side by side: the plugin's and the backend's.

pytest-xdist spreads test files over workers, but a worker that ran QGIS task tests after other
files crashed in Qt's event loop (issue 24). The plugin's tests (tests/msgfm_qgis, with the
top-level tests of docs, build and cards) therefore run in one process, in their usual order,
exactly as in a serial run; the backend's tests (tests/backend) run in a second process at the
same time. Each process prints its own
report when it ends; the exit status is the worse of the two.

Each process runs torch (and any OpenMP or BLAS library) on one thread: two processes on this
2-core machine each spawning a thread per core oversubscribe it, and OpenMP's waiting threads burn
the other process' core. Measured on the shared machine (`/usr/bin/time env OMP_NUM_THREADS=N
python -m pytest tests/backend/train/test_probe.py -k pretraining_logs`, two rounds each):
two threads 80 / 69 s wall, 63 / 57 user CPU-s; one thread 44 / 38 s wall, 32 / 31 user CPU-s.
ONNX Runtime's sessions keep their own thread count (they do not spin while waiting).

    python scripts/run_tests.py [--build-test-models] [pytest arguments, e.g. -m "not integration"]
    MSGFM_TEST_SERIAL=1 python scripts/run_tests.py   # one process, as before
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_TESTS = "tests/msgfm_qgis"
BACKEND_TESTS = "tests/backend"
# Backend folders that run with the plugin's tests, so that both halves take about as long.
WITH_PLUGIN = ("tests/backend/accept", "tests/backend/embedtools")
# make test (which fetched the sample data first) asks for the tests' own models up front;
# make test-unit, offline and without the sample data, does not.
BUILD_OPTION = "--build-test-models"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def commands(extra: Sequence[str]) -> List[List[str]]:
    """The pytest command lines: the plugin's tests with the top-level ones (docs, build, cards)
    and two backend folders, and the rest of the backend's (about equal halves of the suite's
    time on this machine)."""
    # No .pytest_cache: two processes would write it at once.
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *extra]
    # --ignore of a folder also drops paths below it given as arguments: ignore the rest of
    # tests/backend one entry at a time instead.
    rest = sorted(
        f"{BACKEND_TESTS}/{path.name}"
        for path in (ROOT / BACKEND_TESTS).iterdir()
        if (path.is_dir() or path.name.startswith("test_"))
        and f"{BACKEND_TESTS}/{path.name}" not in WITH_PLUGIN
    )
    return [
        [*pytest, "tests", *(f"--ignore={path}" for path in rest)],
        [*pytest, BACKEND_TESTS, *(f"--ignore={folder}" for folder in WITH_PLUGIN)],
    ]


def part_environment() -> Dict[str, str]:
    """The environment of each part: one OpenMP / BLAS thread unless the caller chose a count."""
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env.setdefault(name, "1")
    return env


def split_options(argv: Sequence[str]) -> Tuple[bool, List[str]]:
    """``(build the tests' own models first, the pytest arguments)``."""
    extra = [arg for arg in argv if arg != BUILD_OPTION]
    return len(extra) != len(argv), extra


def build_test_models() -> None:
    """Build the tests' own bundled models (tests/bundled_models.py) before the parts start, with
    both cores: otherwise the first part to need them builds them on one core while the other
    part waits for its lock. A no-op when the cache already holds them; a failure is left for
    the tests that need the models to report."""
    started = time.monotonic()
    code = (
        "import tempfile; from pathlib import Path; "
        "from backend.data.fetch import ensure_sample_data; "
        "from tests.bundled_models import owned_models; "
        "scratch = tempfile.TemporaryDirectory(prefix='msgfm-test-models-'); "
        "print(owned_models(ensure_sample_data(), Path(scratch.name)))"
    )
    built = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    state = (
        "ready" if built.returncode == 0 else "not built (the tests that need them will say why)"
    )
    print(f"== the tests' own models: {state} after {time.monotonic() - started:.0f} s", flush=True)


def main(argv: Sequence[str]) -> int:
    build, extra = split_options(argv)
    if os.environ.get("MSGFM_TEST_SERIAL"):
        return subprocess.call([sys.executable, "-m", "pytest", *extra], cwd=ROOT)
    started = time.monotonic()
    if build:
        build_test_models()
    with tempfile.TemporaryDirectory(prefix="msgfm-tests-") as folder, ExitStack() as files:
        running = []
        for index, command in enumerate(commands(extra)):
            log = files.enter_context(
                open(Path(folder) / f"part{index}.log", "w+", encoding="utf-8")
            )
            print("running:", " ".join(command[5:]), flush=True)
            process = subprocess.Popen(
                command, cwd=ROOT, env=part_environment(), stdout=log, stderr=subprocess.STDOUT
            )
            running.append((process, log))
        codes = []
        while running:
            for process, log in list(running):
                if process.poll() is None:
                    continue
                running.remove((process, log))
                log.seek(0)
                sys.stdout.write(log.read())
                print(
                    f"== {' '.join(process.args[5:])}: exit {process.returncode} after "
                    f"{time.monotonic() - started:.0f} s",
                    flush=True,
                )
                codes.append(process.returncode)
            time.sleep(1)
    print(f"== whole suite: {time.monotonic() - started:.0f} s", flush=True)
    # pytest's codes: 0 passed, 1 failed, 2 interrupted, 5 no tests collected (a selection
    # such as -m "not integration" can leave one part empty: that part did not fail).
    codes = [0 if code == 5 else code for code in codes]
    return max(codes) if codes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
