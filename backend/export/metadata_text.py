"""Text from a model's metadata made safe to print: no control characters.

Metadata strings (model and class names, band names, descriptions) are shown in logs, the QGIS
message log and layer legends. A newline in a class name would start a forged log line; terminal
escape sequences or bidirectional overrides would change what a reader sees. Display strings have
such characters replaced by spaces when the metadata is read; names that must match the ONNX graph
or the sensor registry (input/output ``name``, ``sensor``) are refused instead.
"""

from __future__ import annotations

import unicodedata
from typing import Any, List

# Format characters that reorder or hide text (bidirectional overrides and isolates, zero-width).
_HIDING = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200B, 0x200E, 0x200F)}


def has_control_characters(text: str) -> bool:
    return any(_unsafe(ch) for ch in text)


def printable(text: str) -> str:
    """``text`` with every control, line-separator or text-direction character made a space."""
    if not any(_unsafe(ch) for ch in text):
        return text
    return "".join(" " if _unsafe(ch) else ch for ch in text)


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _HIDING


def clean_metadata(metadata: Any) -> Any:
    """Make the display strings of a :class:`ModelMetadata` printable, in place; returns it.

    Raises:
        ValueError: an input/output ``name`` or a ``sensor`` holds control characters (with the
            metadata key as ``args[0]``).
    """
    for key, specs in (("inputs", metadata.inputs), ("outputs", metadata.outputs)):
        for spec in specs:
            for field in ("name", "sensor"):
                value = getattr(spec, field, None)
                if isinstance(value, str) and has_control_characters(value):
                    raise ValueError(key, f"{field} {value!r} holds control characters")
            spec.bands = _list(spec.bands)
            for info in getattr(spec, "classes", []):
                info.name = printable(info.name)
    metadata.metrics = {
        printable(str(name)): printable(value) if isinstance(value, str) else value
        for name, value in metadata.metrics.items()
    }
    for field in ("model_name", "model_version", "trained_on", "description", "license"):
        value = getattr(metadata, field)
        if isinstance(value, str):
            setattr(metadata, field, printable(value))
    return metadata


def _list(values: List[Any]) -> List[Any]:
    return [printable(v) if isinstance(v, str) else v for v in values]
