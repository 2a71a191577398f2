"""Client of the subprocess worker (:mod:`backend.worker.server`), for the QGIS plugin. No torch.

It starts ``python -m backend.worker`` with a chosen Python executable (QGIS's own ``sys.executable``
is the QGIS binary, and training may need another environment), sends a request, yields its events
and cancels it. The folder holding this ``backend`` package is put on ``PYTHONPATH``, which makes the
package importable as top-level ``backend`` both in a checkout and inside the plugin folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterator, List, Mapping, Optional, Sequence

from .protocol import TERMINAL_EVENTS

# Folder that contains the backend package, and the worker module's name from there.
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
WORKER_MODULE = f"{_PACKAGE_DIR.name}.worker"


class WorkerError(RuntimeError):
    """The worker reported an error for a job, or died. ``kind`` is the worker-side error type."""

    def __init__(self, message: str, kind: str = "WorkerError"):
        super().__init__(message)
        self.kind = kind


class WorkerJobError(WorkerError):
    """The job failed inside the worker; ``kind`` is the exception's class name there."""


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
        # Every stderr line of the worker (its log), for a caller to pass on (see ``run``).
        self.log_lines: queue.Queue = queue.Queue()
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
            if event.get("type") in TERMINAL_EVENTS:
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
        on_poll: Optional[Callable[[], None]] = None,
        on_message: Optional[Callable[[str], None]] = None,
        terminate_after: Optional[float] = None,
    ) -> Dict[str, Any]:
        """Run one job to its end and return its result: the one loop every caller uses.

        Args:
            progress: receives ``(fraction, message)`` of each progress event.
            is_cancelled: polled while waiting; once it returns True the job is cancelled.
            on_poll: called about ten times a second and after each event (e.g. to pass the
                worker's :attr:`log_lines` on from the caller's thread).
            on_message: receives the message of any other event that carries one.
            terminate_after: seconds a cancelled job may take to stop before the worker process
                is terminated (a job inside a long step does not look at its cancel flag);
                None waits for it.

        Raises:
            WorkerCancelledError: the job was cancelled.
            WorkerJobError: the job failed (message and exception name from the worker).
            WorkerError: the worker died or could not be reached.
        """
        cancel_sent_at: List[float] = []

        def poll() -> None:
            if on_poll is not None:
                on_poll()
            if is_cancelled is None or not is_cancelled():
                return
            if not cancel_sent_at:
                cancel_sent_at.append(time.monotonic())
                with contextlib.suppress(WorkerError):  # already gone: events() will say so
                    self.cancel()
            elif terminate_after is not None and time.monotonic() - cancel_sent_at[0] > (
                terminate_after
            ):
                self.terminate()

        self.submit(job, params)
        for event in self.events(poll):
            kind = event.get("type")
            poll()
            message = str(event.get("message", ""))
            if kind == "progress":
                if progress is not None:
                    progress(float(event.get("fraction", 0.0)), message)
            elif kind == "result":
                return event.get("result") or {}
            elif kind == "cancelled":
                raise WorkerCancelledError("the job was cancelled", "cancelled")
            elif kind == "error":
                raise WorkerJobError(str(event.get("message")), str(event.get("error")))
            elif message and on_message is not None:
                on_message(message)
        raise WorkerError("the worker ended without a result")  # pragma: no cover

    def terminate(self, timeout: float = 2.0) -> None:
        """Stop the worker process now (terminate, then kill if it does not end in time)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()

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
            self.log_lines.put(line.rstrip())


def worker_command(python: str) -> Sequence[str]:
    """The command line that starts the worker (for logs and docs)."""
    return [python, "-m", WORKER_MODULE]
