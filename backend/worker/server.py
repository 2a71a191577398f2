"""The local subprocess worker's server: jobs requested as JSON lines on stdin, events on stdout.

Run as ``msgfm worker`` or ``python -m backend.worker`` (inside the plugin: with the plugin folder on
``PYTHONPATH``). Its Python may be another environment than QGIS's (one with CUDA torch, say). The
messages are those of :mod:`backend.worker.protocol`.

One job runs at a time. Jobs are functions ``(params, progress, cancel) -> dict``: add one with
:func:`register_job`, or by naming it in :data:`JOB_MODULES` (imported on first use, so a job that
needs torch costs nothing until requested).
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import signal
import sys
import threading
import traceback
from typing import IO, Any, Callable, Dict, List, Mapping, Optional

from .. import __version__
from ..conventions import json_safe
from ..inference.cancel import CancelToken
from .protocol import PROTOCOL_VERSION

JobHandler = Callable[[Mapping[str, Any], Callable[[float, str], None], CancelToken], Dict]

# Job name -> "module:function" relative to this package (backend.worker), imported when first requested.
JOB_MODULES: Dict[str, str] = {
    "predict": "..inference.jobs:predict",
    "info": "..inference.jobs:info",
    "pretrain": "..train.jobs:pretrain",
    "finetune": "..train.jobs:finetune",
    "export": "..train.jobs:export",
}
_JOBS: Dict[str, JobHandler] = {}


def register_job(name: str, handler: JobHandler) -> None:
    """Make ``handler`` serve requests for job ``name`` (replacing any earlier handler)."""
    _JOBS[name] = handler


def job_names() -> List[str]:
    return sorted(set(_JOBS) | set(JOB_MODULES))


def resolve_job(name: str) -> JobHandler:
    """The handler for job ``name``; raises KeyError with the known job names."""
    if name not in _JOBS and name in JOB_MODULES:
        module_name, _, function = JOB_MODULES[name].partition(":")
        module = importlib.import_module(module_name, __package__)
        _JOBS[name] = getattr(module, function)
    if name not in _JOBS:
        raise KeyError(f"unknown job {name!r}; this worker runs {', '.join(job_names())}")
    return _JOBS[name]


class _EventWriter:
    """Writes protocol events, one JSON line each, from any thread."""

    def __init__(self, stream: IO[str]):
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, event: Dict[str, Any]) -> None:
        line = json.dumps(json_safe(event), default=str)  # undefined scores as null
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class Worker:
    """Serves requests read from ``requests`` and writes events to ``events``."""

    def __init__(self, requests: IO[str], events: IO[str]):
        self._requests = requests
        self._events = _EventWriter(events)
        self._inbox: queue.Queue[Optional[str]] = queue.Queue()
        self._job: Optional[threading.Thread] = None
        self._token: Optional[CancelToken] = None
        self._busy = threading.Event()  # cleared just before a job's last event is sent
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Cancel the running job and end after it (the SIGTERM path)."""
        self._stopping.set()
        if self._token is not None:
            self._token.cancel()

    def serve(self) -> int:
        threading.Thread(target=self._read_requests, daemon=True).start()
        self._events.send(
            {
                "type": "ready",
                "protocol": PROTOCOL_VERSION,
                "version": __version__,
                "jobs": job_names(),
                "pid": os.getpid(),
            }
        )
        end_of_input = False
        while True:
            busy = self._busy.is_set()
            if not busy and (end_of_input or self._stopping.is_set()):
                return 0
            try:
                line = self._inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                end_of_input = True
            elif line.strip():
                self._handle(line, self._busy.is_set())

    def _read_requests(self) -> None:
        for line in self._requests:
            self._inbox.put(line)
        self._inbox.put(None)

    def _handle(self, line: str, busy: bool) -> None:
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ValueError("a message must be a JSON object")
        except ValueError as exc:
            text = (
                f"cannot read message {line.strip()[:80]!r}: {exc}; send one JSON object per line"
            )
            self._events.send(
                {"type": "error", "id": None, "error": "ProtocolError", "message": text}
            )
            return
        kind = message.get("type")
        if kind == "cancel":
            if self._token is not None:
                self._token.cancel()
        elif kind == "shutdown":
            self._stopping.set()
        elif kind == "request":
            if busy:
                self._events.send(
                    {
                        "type": "error",
                        "id": message.get("id"),
                        "error": "Busy",
                        "message": "a job is already running; wait for its result or cancel it",
                    }
                )
                return
            self._token = CancelToken()
            self._busy.set()
            self._job = threading.Thread(target=self._run, args=(message, self._token))
            self._job.start()
        else:
            self._events.send(
                {
                    "type": "error",
                    "id": message.get("id"),
                    "error": "ProtocolError",
                    "message": f"unknown message type {kind!r}: use request, cancel or shutdown",
                }
            )

    def _run(self, request: Dict[str, Any], token: CancelToken) -> None:
        job_id = request.get("id")

        def progress(fraction: float, text: str = "") -> None:
            event = {"type": "progress", "id": job_id, "fraction": fraction, "message": text}
            try:
                self._events.send(event)
            except (BrokenPipeError, OSError):  # nobody listens any more: stop the job
                token.cancel()

        try:
            handler = resolve_job(str(request.get("job")))
            params = request.get("params") or {}
            if not isinstance(params, dict):
                raise ValueError("'params' must be a JSON object")
            result = handler(params, progress, token)
            event = {"type": "result", "id": job_id, "result": result}
        except BaseException as exc:  # every failure becomes an event; the worker lives on
            if token.cancelled:
                event = {"type": "cancelled", "id": job_id, "message": "cancelled"}
            else:
                event = {
                    "type": "error",
                    "id": job_id,
                    "error": type(exc).__name__,
                    "message": _message(exc),
                }
                if not _is_user_error(exc):
                    traceback.print_exc(file=sys.stderr)
        # Free before answering: a client may send its next request as soon as it reads this.
        self._busy.clear()
        try:
            self._events.send(event)
        except (BrokenPipeError, OSError):
            self._stopping.set()


def _message(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return text or type(exc).__name__


def _is_user_error(exc: BaseException) -> bool:
    from ..inference.errors import InferenceError

    return isinstance(exc, (InferenceError, KeyError, ValueError))


def main(argv: Optional[List[str]] = None) -> int:
    """Serve on this process's stdin/stdout until stdin closes, a shutdown message or SIGTERM."""
    # The protocol owns the real stdout; anything else printing to stdout (a library's banner, a
    # C extension's warning) is sent to stderr instead of corrupting the JSON lines.
    events = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    worker = Worker(sys.stdin, events)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: worker.stop())
    return worker.serve()
