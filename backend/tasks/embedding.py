"""Embedding extraction: the pretrained encoder's features (exported by pretraining, not finetuned)."""

from __future__ import annotations

from .base import Task


class Embedding(Task):
    name = "embedding"
    exported = False
