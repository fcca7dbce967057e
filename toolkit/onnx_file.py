"""Validation of an ONNX file before onnxruntime parses it, from the protobuf wire format alone.

The walk needs no ``onnx`` package. It checks that every
length-delimited field lies inside the file (truncation, bit flips in lengths), collects the operator
domains of every node (subgraphs and functions included) and refuses any outside the built-in set, and
checks that external-data files stay inside the model's folder and are long enough. Raw tensor bytes
are skipped, so a 600 MB model is walked in milliseconds. :func:`checker_error` then runs onnx.checker
(the ``onnx`` package) over a file that passed the walk.
"""
from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path

from slmkit.errors import SlmkitError, first_line

# Operator domains implemented inside onnxruntime itself; anything else would be a custom op library.
BUILTIN_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
MAX_DEPTH = 8  # nested subgraphs

# Field numbers of onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ...).
MODEL_GRAPH, MODEL_OPSET, MODEL_FUNCTIONS = 7, 8, 25
OPSET_DOMAIN = 1
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_OUTPUT = 1, 5, 11, 12
NODE_OP_TYPE, NODE_ATTRIBUTE, NODE_DOMAIN = 4, 5, 7
ATTR_GRAPH, ATTR_GRAPHS = 6, 11
TENSOR_NAME, TENSOR_EXTERNAL, TENSOR_LOCATION = 8, 13, 14
ENTRY_KEY, ENTRY_VALUE = 1, 2
VALUE_NAME = 1
FUNCTION_NODE, FUNCTION_DOMAIN = 7, 10


class _Corrupt(Exception):
    pass


@dataclass
class OnnxInfo:
    path: Path
    domains: set[str] = field(default_factory=set)
    op_types: set[str] = field(default_factory=set)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    external: dict[str, int] = field(default_factory=dict)  # file -> bytes needed (offset + length)


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Corrupt
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf, start: int, end: int):
    """(field number, wire type, value) of one message; value is an int, or (start, end) of its bytes."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Corrupt
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 1 or wire == 5:
            value, pos = None, pos + (8 if wire == 1 else 4)
        elif wire == 2:
            n, pos = _varint(buf, pos, end)
            value, pos = (pos, pos + n), pos + n
        else:
            raise _Corrupt
        if pos > end:
            raise _Corrupt
        yield number, wire, value


def _text(buf, span) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8")


def _sub(buf, span, wanted: int):
    """The spans of the length-delimited fields numbered ``wanted`` inside the message at ``span``."""
    return [v for n, w, v in _fields(buf, *span) if n == wanted and w == 2]


def _nodes(buf, nodes, info: OnnxInfo, depth: int) -> None:
    for node in nodes:
        domain, op = "", "?"
        for n, w, v in _fields(buf, *node):
            if w != 2:
                continue
            if n == NODE_DOMAIN:
                domain = _text(buf, v)
            elif n == NODE_OP_TYPE:
                op = _text(buf, v)
            elif n == NODE_ATTRIBUTE:
                for a, aw, av in _fields(buf, *v):
                    if aw == 2 and a in (ATTR_GRAPH, ATTR_GRAPHS):
                        _graph(buf, av, info, depth + 1)
        info.domains.add(domain)
        info.op_types.add(f"{domain}:{op}" if domain else op)


def _graph(buf, span, info: OnnxInfo, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _Corrupt
    for n, w, v in _fields(buf, *span):
        if w != 2:
            continue
        if n == GRAPH_NODE:
            _nodes(buf, [v], info, depth)
        elif n == GRAPH_INITIALIZER:
            _initializer(buf, v, info)
        elif depth == 0 and n in (GRAPH_INPUT, GRAPH_OUTPUT):
            names = _sub(buf, v, VALUE_NAME)
            (info.inputs if n == GRAPH_INPUT else info.outputs).append(_text(buf, names[0]) if names else "")


def _initializer(buf, span, info: OnnxInfo) -> None:
    entries, external = [], False
    for n, w, v in _fields(buf, *span):
        if n == TENSOR_EXTERNAL and w == 2:
            entry = {}
            for k, kw, kv in _fields(buf, *v):
                if kw == 2 and k in (ENTRY_KEY, ENTRY_VALUE):
                    entry[k] = _text(buf, kv)
            entries.append(entry)
        elif n == TENSOR_LOCATION and w == 0:
            external = v == 1
    if external:
        data = {e.get(ENTRY_KEY): e.get(ENTRY_VALUE, "") for e in entries}
        location = data.get("location")
        if not location:
            raise SlmkitError(f"{info.path}: an initializer's external data names no file")
        try:
            need = int(data.get("offset") or 0) + int(data.get("length") or 0)
        except ValueError:
            raise SlmkitError(f"{info.path}: an initializer's external data has a bad offset or length") from None
        info.external[location] = max(info.external.get(location, 0), need)


def inspect_onnx(path: str | Path) -> OnnxInfo:
    """Walk an ONNX file's structure; one-line SlmkitError on anything onnxruntime should not be given."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise SlmkitError(f"no such ONNX file (or empty): {path}")
    info = OnnxInfo(path)
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            graphs, functions = [], []
            for n, w, v in _fields(buf, 0, len(buf)):
                if w == 2 and n == MODEL_GRAPH:
                    graphs.append(v)
                elif w == 2 and n == MODEL_OPSET:
                    info.domains.update(_text(buf, d) for d in _sub(buf, v, OPSET_DOMAIN))
                elif w == 2 and n == MODEL_FUNCTIONS:
                    functions.append(v)
            if len(graphs) != 1:
                raise _Corrupt
            _graph(buf, graphs[0], info, 0)
            for fn in functions:
                info.domains.update(_text(buf, d) for d in _sub(buf, fn, FUNCTION_DOMAIN))
                _nodes(buf, _sub(buf, fn, FUNCTION_NODE), info, 1)
    except (_Corrupt, UnicodeDecodeError):
        raise SlmkitError(f"{path}: corrupt or truncated ONNX file") from None
    unknown = sorted(d for d in info.domains if d not in BUILTIN_DOMAINS)
    if unknown:
        raise SlmkitError(f"{path}: uses operators from unknown domain(s) {', '.join(unknown)}; custom ops are "
                          "refused (slmkit never loads custom op libraries)")
    folder = path.parent.resolve()
    for location, need in info.external.items():
        target = (folder / location).resolve()
        if folder not in target.parents:
            raise SlmkitError(f"{path}: external data {location!r} points outside the model's folder")
        if not target.is_file() or target.stat().st_size < need:
            raise SlmkitError(f"{path}: external data file {location} is missing or shorter than the model needs")
    return info


def checker_error(path: str | Path, full_check: bool = False) -> str | None:
    """onnx.checker's first complaint about a file that passed :func:`inspect_onnx` (None when it passes).
    ``full_check`` adds shape inference (slmkit's converters use it on what they write)."""
    try:
        import onnx.checker
    except ImportError:
        raise SlmkitError(f"{path}: checking an ONNX file needs the onnx package (pip install 'slmkit[onnx]')") from None
    try:
        onnx.checker.check_model(str(path), full_check=full_check)
    except Exception as e:  # ValidationError, InferenceError, protobuf DecodeError, ...
        return first_line(e, 200)
    return None
