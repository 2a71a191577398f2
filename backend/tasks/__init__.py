"""The task registry: every downstream task, declared once, asked for by name.

Not to be confused with :mod:`backend.data.tasks`, which reads the *datasets* of the tasks.

Each task is one small module here with a :class:`~.base.Task` subclass (what it outputs, its head
and loss, the score that picks its checkpoint, its trivial baseline, how its outputs become scores
and how it is exported). Adding a task is one module and one line in :data:`TASKS` below; code
elsewhere asks :func:`get_task` for the task's properties instead of comparing names.
"""

from __future__ import annotations

from typing import Dict, Tuple

from .base import ClassTask, Task
from .classification import Classification
from .cloud_removal import CloudRemoval
from .embedding import Embedding
from .pansharpening import Pansharpening
from .segmentation import Segmentation

TASKS: Dict[str, Task] = {
    t.name: t for t in (Classification(), Segmentation(), CloudRemoval(), Pansharpening())
}
# Every task an ONNX model may declare: the finetuned ones and the encoder's embedding.
MODEL_TASKS: Dict[str, Task] = {**TASKS, "embedding": Embedding()}
CLASS_TASKS: Tuple[str, ...] = tuple(n for n, t in TASKS.items() if t.has_classes)
IMAGE_TASKS: Tuple[str, ...] = tuple(n for n, t in TASKS.items() if not t.has_classes)


def get_task(name: str) -> Task:
    """The task called ``name`` (a finetuned task or ``embedding``).

    Raises:
        ValueError: no such task (the message lists the known ones).
    """
    try:
        return MODEL_TASKS[name]
    except KeyError:
        raise ValueError(f"task must be one of {', '.join(MODEL_TASKS)}, not {name!r}") from None


__all__ = ["CLASS_TASKS", "IMAGE_TASKS", "MODEL_TASKS", "TASKS", "ClassTask", "Task", "get_task"]
