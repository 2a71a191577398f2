"""Warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import pytest

from backend.train.schedule import cosine_with_warmup


def test_warmup_rises_linearly_then_cosine_reaches_floor():
    factors = [cosine_with_warmup(s, 4, 20, 0.01) for s in range(21)]
    assert factors[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))  # monotone decay after warm-up
    assert factors[12] == pytest.approx(0.01 + 0.99 * 0.5)  # half-way through the cosine
    assert factors[20] == pytest.approx(0.01)
    assert cosine_with_warmup(100, 4, 20, 0.01) == pytest.approx(0.01)  # stays at the floor


def test_no_warmup_starts_at_the_peak():
    assert cosine_with_warmup(0, 0, 10, 0.0) == pytest.approx(1.0)
