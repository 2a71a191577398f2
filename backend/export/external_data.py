"""Reading an ONNX file's protobuf directly: external-data paths (refused outside the model's
folder) and ``metadata_props`` (read without opening an ONNX Runtime session).

An ONNX tensor may keep its values in another file, named by a path relative to the model. A model
naming ``../../somewhere/file`` or an absolute path would make ONNX Runtime read any file the user
can read. Recent ONNX Runtime versions refuse such paths; this check does it for every version the
plugin may meet, with a message that says what is wrong, before a session is opened.

The model is read as protobuf wire format through a memory map (no ``onnx`` package, which the
plugin does not ship; tensor payloads are skipped, not read).
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

# Field numbers of onnx.proto3 that lead to tensors.
_MODEL_GRAPH = 7
_MODEL_METADATA_PROPS = 14
_MODEL_FUNCTIONS = 25
_FUNCTION_NODES = 7
_GRAPH_NODES, _GRAPH_INITIALIZERS, _GRAPH_SPARSE_INITIALIZERS = 1, 5, 15
_NODE_ATTRIBUTES = 5
_ATTRIBUTE_TENSOR, _ATTRIBUTE_GRAPH, _ATTRIBUTE_TENSORS, _ATTRIBUTE_GRAPHS = 5, 6, 10, 11
_ATTRIBUTE_SPARSE_TENSOR, _ATTRIBUTE_SPARSE_TENSORS = 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_EXTERNAL_DATA = 13
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_MAX_DEPTH = 64  # subgraphs nested deeper than this are not a real model


class ExternalDataError(ValueError):
    """The model names external data outside its folder, or cannot be parsed."""


def external_data_locations(path: str | Path) -> List[str]:
    """Every external-data ``location`` the ONNX model at ``path`` names."""
    with open(path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        if size == 0:
            return []
        with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            problem = None
            try:
                locations = list(_model(memoryview(mapped)))
            except (IndexError, ValueError) as exc:
                # Kept as text: the traceback's frames hold views that must go before the map.
                problem = str(exc) or type(exc).__name__
    if problem is not None:
        raise ValueError(problem)
    return locations


def check_external_data(path: str | Path) -> None:
    """Raise :class:`ExternalDataError` when a tensor's data file is outside the model's folder."""
    path = Path(path)
    folder = path.resolve().parent
    try:
        locations = external_data_locations(path)
    except (IndexError, ValueError):
        return  # not protobuf: ONNX Runtime refuses the file with its own message
    for location in locations:
        target = Path(location)
        escapes = target.is_absolute() or ".." in target.parts
        if not escapes:
            resolved = (folder / target).resolve()
            escapes = folder != resolved and folder not in resolved.parents
        if escapes:
            raise ExternalDataError(
                f"{path.name} reads tensor data from '{location}', outside the model's folder "
                f"{folder}; msGFM refuses such models: use a model whose data files sit beside it "
                "(or a single-file model from `msgfm export`)"
            )


def _fields(view: memoryview) -> Iterator[Tuple[int, int, memoryview]]:
    """(field number, wire type, payload) of each field of one message; payload for LEN only."""
    position, end = 0, len(view)
    while position < end:
        key, position = _varint(view, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, position = _varint(view, position)
            payload = view[0:0]
        elif wire == 1:
            position += 8
            payload = view[0:0]
        elif wire == 2:
            length, position = _varint(view, position)
            if position + length > end:
                raise ValueError("a field runs past the end of its message")
            payload = view[position : position + length]
            position += length
        elif wire == 5:
            position += 4
            payload = view[0:0]
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, payload


def _varint(view: memoryview, position: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        byte = view[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def metadata_props(path: str | Path) -> Dict[str, str]:
    """The model's ``metadata_props`` (key -> value), read without ONNX Runtime.

    Opening an ONNX Runtime session takes most of a second for a small model and holds Python's
    lock meanwhile; help texts and dialogs read the metadata this way instead.
    """
    with open(path, "rb") as stream:
        if os.fstat(stream.fileno()).st_size == 0:
            return {}
        with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            props, problem = {}, None
            try:
                props = _props(memoryview(mapped))
            except (IndexError, ValueError) as exc:
                problem = str(exc) or type(exc).__name__
    if problem is not None:
        raise ValueError(problem)
    return props


def _props(view: memoryview) -> Dict[str, str]:
    # A function of its own: the views into the map are gone when it returns.
    props = {}
    for number, wire, payload in _fields(view):
        if number == _MODEL_METADATA_PROPS and wire == 2:
            key, value = _entry(payload)
            if key is not None:
                props[key] = value or ""
    return props


def _entry(view: memoryview) -> Tuple[Optional[str], Optional[str]]:
    key = value = None
    for number, wire, text in _fields(view):
        if wire == 2 and number == _ENTRY_KEY:
            key = bytes(text).decode("utf-8", "replace")
        elif wire == 2 and number == _ENTRY_VALUE:
            value = bytes(text).decode("utf-8", "replace")
    return key, value


def _model(view: memoryview) -> Iterator[str]:
    for number, wire, payload in _fields(view):
        if wire != 2:
            continue
        if number == _MODEL_GRAPH:
            yield from _graph(payload, 0)
        elif number == _MODEL_FUNCTIONS:
            for inner, inner_wire, node in _fields(payload):
                if inner == _FUNCTION_NODES and inner_wire == 2:
                    yield from _node(node, 0)


def _graph(view: memoryview, depth: int) -> Iterator[str]:
    if depth > _MAX_DEPTH:
        raise ValueError("subgraphs nested too deeply")
    for number, wire, payload in _fields(view):
        if wire != 2:
            continue
        if number == _GRAPH_NODES:
            yield from _node(payload, depth)
        elif number == _GRAPH_INITIALIZERS:
            yield from _tensor(payload)
        elif number == _GRAPH_SPARSE_INITIALIZERS:
            yield from _sparse(payload)


def _node(view: memoryview, depth: int) -> Iterator[str]:
    for number, wire, payload in _fields(view):
        if number != _NODE_ATTRIBUTES or wire != 2:
            continue
        for inner, inner_wire, value in _fields(payload):
            if inner_wire != 2:
                continue
            if inner in (_ATTRIBUTE_TENSOR, _ATTRIBUTE_TENSORS):
                yield from _tensor(value)
            elif inner in (_ATTRIBUTE_GRAPH, _ATTRIBUTE_GRAPHS):
                yield from _graph(value, depth + 1)
            elif inner in (_ATTRIBUTE_SPARSE_TENSOR, _ATTRIBUTE_SPARSE_TENSORS):
                yield from _sparse(value)


def _sparse(view: memoryview) -> Iterator[str]:
    for number, wire, payload in _fields(view):
        if wire == 2 and number in (_SPARSE_VALUES, _SPARSE_INDICES):
            yield from _tensor(payload)


def _tensor(view: memoryview) -> Iterator[str]:
    for number, wire, payload in _fields(view):
        if number != _TENSOR_EXTERNAL_DATA or wire != 2:
            continue
        key, value = _entry(payload)
        if key == "location" and value is not None:
            yield value
