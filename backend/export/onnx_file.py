"""The parts of an ONNX file that describe it, read straight from its protobuf bytes.

Reading a model's msGFM metadata must not cost an ONNX Runtime session (graph optimisation takes
0.4-0.9 s for the bundled models) and cannot use the ``onnx`` package, which QGIS's Python does not
have. An ONNX file is one serialised ``ModelProto``; this module walks its wire format and keeps
only ``metadata_props`` and the graph's input and output declarations, skipping every other field
(nodes, weights) by its length without reading it. The file is memory-mapped, so a large model is
not loaded either.

Field numbers are those of ``onnx.proto`` (stable since IR version 3):

- ``ModelProto``: 7 graph, 14 metadata_props
- ``StringStringEntryProto``: 1 key, 2 value
- ``GraphProto``: 11 input, 12 output (``ValueInfoProto``)
- ``ValueInfoProto``: 1 name, 2 type; ``TypeProto``: 1 tensor_type; ``TypeProto.Tensor``: 1 elem_type,
  2 shape; ``TensorShapeProto``: 1 dim; ``Dimension``: 1 dim_value, 2 dim_param
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple, TypeVar, Union

# Protobuf wire types.
_VARINT, _FIXED64, LENGTH, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5

Buffer = Union[bytes, mmap.mmap]
T = TypeVar("T")
Dim = Union[int, str, None]  # as ONNX Runtime reports shapes: fixed, symbolic or unknown


class OnnxFileError(ValueError):
    """The bytes are not a well-formed ONNX ``ModelProto``."""


@dataclass
class GraphValue:
    """A graph input or output: its name and shape (``None`` when the file gives no shape)."""

    name: str
    shape: Optional[List[Dim]] = None


@dataclass
class OnnxFileInfo:
    """What :func:`read_onnx_info` keeps of a model file."""

    metadata_props: Dict[str, str] = field(default_factory=dict)
    inputs: List[GraphValue] = field(default_factory=list)
    outputs: List[GraphValue] = field(default_factory=list)


def read_onnx_info(path: Union[str, Path]) -> OnnxFileInfo:
    """Read ``metadata_props`` and the graph inputs and outputs of the ONNX file at ``path``.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        OnnxFileError: the file is empty, truncated or not an ONNX model.
    """
    return read_mapped(path, parse_model)


def read_mapped(path: Union[str, Path], parse: Callable[[Buffer], T]) -> T:
    """``parse`` applied to the bytes of the file at ``path``, memory-mapped (never loaded whole).

    Raises:
        OnnxFileError: the file is empty.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        if path.stat().st_size == 0:
            raise OnnxFileError("the file is empty")
        # Indexed directly (no memoryview): nothing keeps the map exported when it closes.
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return parse(mapped)


def parse_model(view: Buffer) -> OnnxFileInfo:
    """Parse the serialised ``ModelProto`` in ``view`` (see :func:`read_onnx_info`)."""
    info = OnnxFileInfo()
    has_graph = False
    for number, wire, value in fields(view, 0, len(view)):
        if number == 7 and wire == LENGTH:
            has_graph = True
            _parse_graph(view, value, info)
        elif number == 14 and wire == LENGTH:
            key, text = parse_entry(view, value)
            info.metadata_props[key] = text
    if not has_graph:
        raise OnnxFileError("the file holds no graph")
    return info


def _parse_graph(view: Buffer, span: Tuple[int, int], info: OnnxFileInfo) -> None:
    for number, wire, value in fields(view, *span):
        if number in (11, 12) and wire == LENGTH:
            (info.inputs if number == 11 else info.outputs).append(_parse_value_info(view, value))


def _parse_value_info(view: Buffer, span: Tuple[int, int]) -> GraphValue:
    item = GraphValue(name="")
    for number, wire, value in fields(view, *span):
        if number == 1 and wire == LENGTH:
            item.name = text_at(view, value)
        elif number == 2 and wire == LENGTH:
            for type_number, type_wire, tensor in fields(view, *value):
                if type_number == 1 and type_wire == LENGTH:  # tensor_type
                    item.shape = _parse_tensor_shape(view, tensor)
    return item


def _parse_tensor_shape(view: Buffer, span: Tuple[int, int]) -> Optional[List[Dim]]:
    shape: Optional[List[Dim]] = None
    for number, wire, value in fields(view, *span):
        if number == 2 and wire == LENGTH:  # shape (absent: rank unknown)
            shape = []
            for dim_number, dim_wire, dim in fields(view, *value):
                if dim_number == 1 and dim_wire == LENGTH:
                    shape.append(_parse_dimension(view, dim))
    return shape


def _parse_dimension(view: Buffer, span: Tuple[int, int]) -> Dim:
    result: Dim = None
    for number, wire, value in fields(view, *span):
        if number == 1 and wire == _VARINT:
            result = _signed(value)
        elif number == 2 and wire == LENGTH:
            result = text_at(view, value)
    return result


def parse_entry(view: Buffer, span: Tuple[int, int]) -> Tuple[str, str]:
    """``(key, value)`` of a ``StringStringEntryProto`` (metadata, external-data locations)."""
    key = text = ""
    for number, wire, value in fields(view, *span):
        if number == 1 and wire == LENGTH:
            key = text_at(view, value)
        elif number == 2 and wire == LENGTH:
            text = text_at(view, value)
    return key, text


def fields(view: Buffer, start: int, stop: int) -> Iterator[Tuple[int, int, object]]:
    """Yield ``(field number, wire type, value)`` of a message in ``view[start:stop]``.

    The value is an int for varint and fixed-width fields and a ``(start, stop)`` span of the bytes
    for length-delimited ones (not copied: nested messages are parsed in place or skipped).
    """
    position = start
    while position < stop:
        tag, position = _varint(view, position, stop)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise OnnxFileError(f"invalid field number 0 at byte {position}")
        if wire == _VARINT:
            value, position = _varint(view, position, stop)
            yield number, wire, value
        elif wire == LENGTH:
            length, position = _varint(view, position, stop)
            end = position + length
            if end > stop:
                raise OnnxFileError(f"a field at byte {position} runs past its end (truncated?)")
            yield number, wire, (position, end)
            position = end
        elif wire in (_FIXED64, _FIXED32):
            width = 8 if wire == _FIXED64 else 4
            if position + width > stop:
                raise OnnxFileError(f"a field at byte {position} runs past its end (truncated?)")
            yield number, wire, int.from_bytes(view[position : position + width], "little")
            position += width
        else:  # groups are not used by ONNX; anything else is not protobuf
            raise OnnxFileError(f"unexpected wire type {wire} at byte {position}")


def _varint(view: Buffer, position: int, stop: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if position >= stop or shift > 63:
            raise OnnxFileError(f"a number at byte {position} is cut off or too long")
        byte = view[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _signed(value: object) -> int:
    """An int64 stored as a varint (two's complement over 64 bits)."""
    assert isinstance(value, int)
    return value - (1 << 64) if value >= 1 << 63 else value


def text_at(view: Buffer, span: object) -> str:
    """The UTF-8 text in ``view`` at ``span`` (a length-delimited field's value)."""
    start, stop = span  # type: ignore[misc]
    try:
        return bytes(view[start:stop]).decode("utf-8")
    except UnicodeDecodeError:
        raise OnnxFileError(f"text at byte {start} is not UTF-8") from None
