"""Cancellation of a running inference, from any thread.

A :class:`CancelToken` is checked between batches; a batch already inside ONNX Runtime is stopped
through ``onnxruntime.RunOptions.terminate``, so a cancel takes effect within one batch even when a
batch takes minutes on a large model.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional

from .errors import InferenceCancelledError


class CancelToken:
    """A thread-safe cancel flag that can also stop a running ONNX Runtime call.

    Args:
        poll: optional function returning True when the caller wants to stop (e.g. the QGIS
            ``feedback.isCanceled``); it is consulted every time the token is checked.
    """

    def __init__(self, poll: Optional[Callable[[], bool]] = None):
        self._poll = poll
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._run_options: List[Any] = []

    def cancel(self) -> None:
        """Ask the run to stop; a batch running in ONNX Runtime is terminated at once."""
        with self._lock:
            self._event.set()
            for options in self._run_options:
                options.terminate = True

    @property
    def cancelled(self) -> bool:
        if not self._event.is_set() and self._poll is not None and self._poll():
            self.cancel()
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`InferenceCancelledError` when a cancel was asked for."""
        if self.cancelled:
            raise InferenceCancelledError("inference cancelled")

    def attach(self, run_options: Any) -> None:
        """Register the ``RunOptions`` of a batch about to run, so :meth:`cancel` can terminate it."""
        with self._lock:
            if self._event.is_set():
                run_options.terminate = True
            self._run_options.append(run_options)

    def detach(self, run_options: Any) -> None:
        with self._lock:
            if run_options in self._run_options:
                self._run_options.remove(run_options)
