"""Client of the subprocess worker (:mod:`backend.worker`), for the QGIS plugin. No torch.

It starts ``python -m backend.worker`` with a chosen Python executable (QGIS's own ``sys.executable``
is the QGIS binary, and training may need another environment), sends a request, yields its events
and cancels it. The folder holding this ``backend`` package is put on ``PYTHONPATH``, which makes the
package importable as top-level ``backend`` both in a checkout and inside the plugin folder.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterator, List, Mapping, Optional, Sequence

# Folder that contains the backend package, and the worker module's name from there.
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
WORKER_MODULE = f"{_PACKAGE_DIR.name}.worker"
_TERMINAL = ("result", "error", "cancelled")


class WorkerError(RuntimeError):
    """The worker reported an error for a job, or died. ``kind`` is the worker-side error type."""

    def __init__(self, message: str, kind: str = "WorkerError"):
        super().__init__(message)
        self.kind = kind


class WorkerCancelledError(WorkerError):
    """The job was cancelled."""


class WorkerClient:
    """One worker subprocess.

    Args:
        python: the Python executable to run the worker with.
        env: extra environment variables for the worker.
        start_timeout: seconds to wait for the worker's ``ready`` message.
    """

    def __init__(
        self,
        python: str,
        env: Optional[Mapping[str, str]] = None,
        start_timeout: float = 60.0,
    ):
        self.python = python
        self.extra_env = dict(env or {})
        self.start_timeout = start_timeout
        self.process: Optional[subprocess.Popen] = None
        self.ready: Dict[str, Any] = {}
        self._events: queue.Queue = queue.Queue()
        self._stderr: Deque[str] = deque(maxlen=40)
        self._next_id = 0
        self._current: Optional[str] = None
        self._readers: List[threading.Thread] = []

    def __enter__(self) -> WorkerClient:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def start(self) -> Dict[str, Any]:
        """Start the worker and wait for its ``ready`` message (returned)."""
        env = dict(os.environ)
        env.update(self.extra_env)
        root = str(_PACKAGE_DIR.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        try:
            self.process = subprocess.Popen(
                [self.python, "-m", WORKER_MODULE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                text=True,
                encoding="utf-8",
                bufsize=1,
            )
        except OSError as exc:
            raise WorkerError(f"cannot start the worker with Python {self.python}: {exc}") from None
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        event = self._next_event(self.start_timeout)
        if event.get("type") != "ready":
            raise WorkerError(f"the worker did not start properly: {event}")
        self.ready = event
        return event

    def submit(self, job: str, params: Mapping[str, Any]) -> str:
        """Send a request; returns its id. Read its events with :meth:`events`."""
        self._next_id += 1
        self._current = str(self._next_id)
        self._send({"type": "request", "id": self._current, "job": job, "params": dict(params)})
        return self._current

    def events(self, poll: Optional[Callable[[], None]] = None) -> Iterator[Dict[str, Any]]:
        """Yield the current job's events up to and including its result, error or cancelled.

        Args:
            poll: called about ten times a second while waiting (e.g. to check a cancel flag).
        """
        while True:
            try:
                event = self._next_event(0.1)
            except queue.Empty:
                if poll is not None:
                    poll()
                continue
            if event.get("id") not in (self._current, None):
                continue  # a late event of an earlier job
            yield event
            if event.get("type") in _TERMINAL:
                return

    def cancel(self) -> None:
        """Ask the running job to stop (it ends with a ``cancelled`` event)."""
        self._send({"type": "cancel"})

    def run(
        self,
        job: str,
        params: Mapping[str, Any],
        progress: Optional[Callable[[float, str], None]] = None,
        is_cancelled: Optional[Callable[[], bool]] = None,
    ) -> Dict[str, Any]:
        """Run one job to its end and return its result.

        Args:
            progress: receives ``(fraction, message)`` of each progress event.
            is_cancelled: polled while waiting; once it returns True the job is cancelled.

        Raises:
            WorkerCancelledError: the job was cancelled.
            WorkerError: the job failed (message from the worker) or the worker died.
        """
        cancel_sent = [False]

        def poll() -> None:
            if is_cancelled is not None and not cancel_sent[0] and is_cancelled():
                cancel_sent[0] = True
                self.cancel()

        self.submit(job, params)
        for event in self.events(poll):
            kind = event.get("type")
            poll()
            if kind == "progress" and progress is not None:
                progress(float(event.get("fraction", 0.0)), str(event.get("message", "")))
            elif kind == "result":
                return event.get("result") or {}
            elif kind == "cancelled":
                raise WorkerCancelledError("the job was cancelled", "cancelled")
            elif kind == "error":
                raise WorkerError(str(event.get("message")), str(event.get("error")))
        raise WorkerError("the worker ended without a result")  # pragma: no cover

    def close(self, timeout: float = 10.0) -> Optional[int]:
        """Ask the worker to finish, wait for it (terminating it if it hangs); returns its code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                self._send({"type": "shutdown"})
                assert self.process.stdin is not None
                self.process.stdin.close()
            except (WorkerError, OSError):
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        for reader in self._readers:
            reader.join(5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None and not stream.closed:
                stream.close()
        return self.process.returncode

    @property
    def stderr_tail(self) -> str:
        """The worker's last lines of stderr (tracebacks, warnings), for error reports."""
        return "".join(self._stderr)

    def _send(self, message: Dict[str, Any]) -> None:
        if self.process is None or self.process.stdin is None:
            raise WorkerError("the worker is not started")
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise WorkerError(self._died_message()) from None

    def _next_event(self, timeout: float) -> Dict[str, Any]:
        event = self._events.get(timeout=timeout)
        if event is None:
            raise WorkerError(self._died_message())
        return event

    def _died_message(self) -> str:
        code = self.process.poll() if self.process is not None else None
        tail = self.stderr_tail.strip().splitlines()[-5:]
        details = ("; last output: " + " | ".join(tail)) if tail else ""
        return f"the worker process ended unexpectedly (exit code {code}){details}"

    def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                self._stderr.append(line)  # not protocol: keep it for error reports
                continue
            if isinstance(event, dict):
                self._events.put(event)
        self._events.put(None)

    def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)


def python_candidates(
    executable: str = "",
    exec_prefixes: Sequence[str] = (),
    environ: Optional[Mapping[str, str]] = None,
    system: str = "",
    version: Optional[Sequence[int]] = None,
) -> List[Path]:
    """Interpreters to try for the worker, best first (see :func:`default_python`).

    Args:
        executable: ``sys.executable`` (the QGIS program inside QGIS).
        exec_prefixes: ``sys.prefix``, ``sys.exec_prefix`` and ``sys.base_exec_prefix``.
        environ: the environment (``VIRTUAL_ENV``, ``MSGFM_PYTHON``).
        system: ``platform.system()`` (``Linux``, ``Windows``, ``Darwin``).
        version: ``(major, minor)`` of the running Python.
    """
    import platform

    environ = os.environ if environ is None else environ
    system = system or platform.system()
    major, minor = tuple(version or sys.version_info[:2])[:2]
    windows = system == "Windows"
    candidates: List[Path] = []
    prefixes = [Path(p) for p in exec_prefixes if p]
    # sys.executable is the interpreter only when it lies in the environment's prefix: Python
    # embedded in QGIS guesses it from PATH (e.g. a pyenv shim of an unrelated Python).
    trusted = any(_inside(Path(executable), prefix) for prefix in prefixes)
    if executable and Path(executable).name.lower().startswith("python") and trusted:
        candidates.append(Path(executable))  # a plain Python (venv, tests, the CLI)
    # QGIS's own Python: the interpreter that shares its packages (rasterio, GDAL, numpy<2).
    for prefix in prefixes:
        if windows:
            candidates += [prefix / "python.exe", prefix / "python3.exe"]
        else:
            candidates += [prefix / "bin" / f"python{major}.{minor}", prefix / "bin" / "python3"]
    if executable:
        program = Path(executable).parent
        if windows:
            # OSGeo4W and the standalone installer: bin/qgis-bin.exe beside bin/python.exe, or
            # apps/Python3X/python.exe above it.
            candidates.append(program / "python.exe")
            for root in (program.parent, program.parent.parent):
                candidates.append(root / "bin" / "python.exe")
                candidates.append(root / "apps" / f"Python{major}{minor}" / "python.exe")
        elif system == "Darwin":
            candidates.append(program / "bin" / "python3")  # QGIS.app/Contents/MacOS/bin/python3
    # The environment the plugin was set up from.
    if environ.get("MSGFM_PYTHON"):
        candidates.append(Path(environ["MSGFM_PYTHON"]))
    if environ.get("VIRTUAL_ENV"):
        venv = Path(environ["VIRTUAL_ENV"])
        candidates.append(venv / "Scripts" / "python.exe" if windows else venv / "bin" / "python")
    unique: List[Path] = []
    for candidate in candidates:
        if candidate not in unique:
            unique.append(candidate)
    return unique


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies under ``folder`` (unresolved: a venv's python links elsewhere)."""
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def default_python() -> str:
    """The Python interpreter for the worker when the plugin setting names none.

    Inside QGIS ``sys.executable`` is the QGIS program itself or a Python that the embedded
    interpreter found on PATH, and a PATH lookup can find any Python (a pyenv shim without rasterio,
    say). In order: ``sys.executable`` when it is a Python inside the running environment; the
    interpreter of QGIS's own Python (``sys.exec_prefix`` / ``sys.base_exec_prefix``, on Windows
    ``python.exe`` beside or above the QGIS program, on macOS QGIS.app's ``bin/python3``); then the
    environment the plugin was set up from (``MSGFM_PYTHON``, ``VIRTUAL_ENV``); last, PATH.

    Raises:
        WorkerError: no interpreter was found.
    """
    candidates = python_candidates(
        sys.executable or "", (sys.prefix, sys.exec_prefix, sys.base_exec_prefix), os.environ
    )
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = shutil.which(f"python{version}") or shutil.which("python3")
    if found:
        return found
    raise WorkerError(
        "cannot find a Python interpreter for the worker; set its path in the plugin settings"
    )


def worker_command(python: str) -> Sequence[str]:
    """The command line that starts the worker (for logs and docs)."""
    return [python, "-m", WORKER_MODULE]
