"""Producing the next items of an iterator in a background thread while the caller works.

The engine reads, masks and normalises the next chunk of the raster here while ONNX Runtime runs
the current one: GDAL and numpy release the GIL, so reading overlaps the model instead of leaving
the cores idle between batches. A small bounded queue keeps at most ``depth`` chunks ahead (memory
stays bounded); an error in the producer is raised in the consumer, and closing the consumer early
(an error, a cancel) stops the producer before the next item.
"""

from __future__ import annotations

import queue
import threading
from contextlib import contextmanager, suppress
from typing import Any, Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.1


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


@contextmanager
def prefetched(produce: Callable[[], Iterable[T]], depth: int = 2) -> Iterator[Iterator[T]]:
    """Iterate over ``produce()`` computed ``depth`` items ahead in a background thread.

    Use as ``with prefetched(make_items) as items: for item in items: ...``. The thread is
    stopped and joined when the block exits, however it exits.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, not {depth}")
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in produce():
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Failure(exc))

    def consume() -> Iterator[T]:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    thread = threading.Thread(target=run, name="msgfm-prefetch", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue, then let it end
            with suppress(queue.Empty):
                items.get(timeout=_POLL_S)
        thread.join()
