"""The background producer of the engine's chunks, and the vectorised class choice."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from backend.inference.blending import best_channel
from backend.inference.prefetch import prefetched


def test_items_arrive_in_order_from_another_thread():
    threads = []

    def produce():
        for k in range(20):
            threads.append(threading.current_thread().name)
            yield k

    with prefetched(produce, depth=2) as items:
        assert list(items) == list(range(20))
    assert set(threads) == {"msgfm-prefetch"}


def test_producer_error_is_raised_in_the_consumer():
    def produce():
        yield 1
        raise OSError("read failed at row 7")

    with pytest.raises(OSError, match="row 7"), prefetched(produce) as items:
        list(items)


def test_leaving_early_stops_the_producer_within_one_item():
    produced = []

    def produce():
        for k in range(1000):
            produced.append(k)
            yield k

    started = time.perf_counter()
    with pytest.raises(RuntimeError), prefetched(produce, depth=2) as items:
        for item in items:
            if item == 3:
                raise RuntimeError("consumer failed")
    assert time.perf_counter() - started < 5
    assert len(produced) <= 3 + 2 + 2  # the items taken, the queue, one in hand
    assert not any(t.name == "msgfm-prefetch" for t in threading.enumerate())


@pytest.mark.parametrize("seed", range(3))
def test_best_channel_equals_argmax_including_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(5, 31, 17)).astype(np.float32)  # many ties
    np.testing.assert_array_equal(best_channel(scores), np.argmax(scores, axis=0))
    scores = rng.standard_normal((7, 8, 9)).astype(np.float32)
    np.testing.assert_array_equal(best_channel(scores), np.argmax(scores, axis=0))
