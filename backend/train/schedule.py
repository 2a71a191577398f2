"""Learning-rate schedule: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math


def cosine_with_warmup(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based).

    Warm-up keeps the first AdamW updates small while its moment estimates are still noisy; the
    cosine then anneals to ``min_ratio`` of the base rate at ``total_steps``.

    Args:
        step: Optimiser steps taken so far.
        warmup_steps: Steps of linear warm-up from ``1 / (warmup_steps + 1)`` to 1.
        total_steps: Step at which the cosine reaches its floor.
        min_ratio: Floor, as a fraction of the base rate.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
