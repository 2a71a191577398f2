"""External-data paths of an ONNX model, refused outside the model's folder.

An ONNX tensor may keep its values in another file, named by a path relative to the model. A model
naming ``../../somewhere/file`` or an absolute path would make ONNX Runtime read any file the user
can read. Recent ONNX Runtime versions refuse such paths; this check does it for every version the
plugin may meet, with a message that says what is wrong, before a session is opened.

The model is walked as protobuf wire format by :mod:`.onnx_file`'s reader (no ``onnx`` package,
which the plugin does not ship; tensor payloads are skipped, not read).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Tuple

from .onnx_file import LENGTH, Buffer, OnnxFileError, fields, parse_entry, read_mapped

Span = Tuple[int, int]

# Field numbers of onnx.proto3 that lead to tensors.
_MODEL_GRAPH = 7
_MODEL_FUNCTIONS = 25
_FUNCTION_NODES = 7
_GRAPH_NODES, _GRAPH_INITIALIZERS, _GRAPH_SPARSE_INITIALIZERS = 1, 5, 15
_NODE_ATTRIBUTES = 5
_ATTRIBUTE_TENSOR, _ATTRIBUTE_GRAPH, _ATTRIBUTE_TENSORS, _ATTRIBUTE_GRAPHS = 5, 6, 10, 11
_ATTRIBUTE_SPARSE_TENSOR, _ATTRIBUTE_SPARSE_TENSORS = 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_EXTERNAL_DATA = 13
_MAX_DEPTH = 64  # subgraphs nested deeper than this are not a real model


class ExternalDataError(ValueError):
    """The model names external data outside its folder, or cannot be parsed."""


def external_data_locations(path: str | Path) -> List[str]:
    """Every external-data ``location`` the ONNX model at ``path`` names (none for an empty file).

    Raises:
        ValueError: the file is not protobuf.
    """
    if Path(path).stat().st_size == 0:
        return []
    return read_mapped(path, lambda view: list(_model(view)))


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


def _model(view: Buffer) -> Iterator[str]:
    for number, wire, span in fields(view, 0, len(view)):
        if wire != LENGTH:
            continue
        if number == _MODEL_GRAPH:
            yield from _graph(view, span, 0)
        elif number == _MODEL_FUNCTIONS:
            for inner, inner_wire, node in fields(view, *span):
                if inner == _FUNCTION_NODES and inner_wire == LENGTH:
                    yield from _node(view, node, 0)


def _graph(view: Buffer, span: Span, depth: int) -> Iterator[str]:
    if depth > _MAX_DEPTH:
        raise OnnxFileError("subgraphs nested too deeply")
    for number, wire, value in fields(view, *span):
        if wire != LENGTH:
            continue
        if number == _GRAPH_NODES:
            yield from _node(view, value, depth)
        elif number == _GRAPH_INITIALIZERS:
            yield from _tensor(view, value)
        elif number == _GRAPH_SPARSE_INITIALIZERS:
            yield from _sparse(view, value)


def _node(view: Buffer, span: Span, depth: int) -> Iterator[str]:
    for number, wire, attribute in fields(view, *span):
        if number != _NODE_ATTRIBUTES or wire != LENGTH:
            continue
        for inner, inner_wire, value in fields(view, *attribute):
            if inner_wire != LENGTH:
                continue
            if inner in (_ATTRIBUTE_TENSOR, _ATTRIBUTE_TENSORS):
                yield from _tensor(view, value)
            elif inner in (_ATTRIBUTE_GRAPH, _ATTRIBUTE_GRAPHS):
                yield from _graph(view, value, depth + 1)
            elif inner in (_ATTRIBUTE_SPARSE_TENSOR, _ATTRIBUTE_SPARSE_TENSORS):
                yield from _sparse(view, value)


def _sparse(view: Buffer, span: Span) -> Iterator[str]:
    for number, wire, value in fields(view, *span):
        if wire == LENGTH and number in (_SPARSE_VALUES, _SPARSE_INDICES):
            yield from _tensor(view, value)


def _tensor(view: Buffer, span: Span) -> Iterator[str]:
    for number, wire, entry in fields(view, *span):
        if number != _TENSOR_EXTERNAL_DATA or wire != LENGTH:
            continue
        key, location = parse_entry(view, entry)
        if key == "location":
            yield location
