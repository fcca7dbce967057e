"""Read and validate a safetensors file's header without loading tensors (and without torch).

The format: an 8-byte little-endian header length N, N bytes of JSON ({name: {dtype, shape,
data_offsets}}, optional "__metadata__"), then the data. Every check here runs before any native
loader sees the file.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from slmkit.errors import SlmkitError

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def read_header(path: Path) -> dict[str, TensorEntry]:
    """The tensor table of a safetensors file; raises SlmkitError naming the defect."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise SlmkitError(f"{path}: truncated safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_HEADER or 8 + n > size:
            raise SlmkitError(f"{path}: corrupt safetensors header (length {n} for a {size}-byte file)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise SlmkitError(f"{path}: corrupt safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise SlmkitError(f"{path}: corrupt safetensors header (not a table)")
    data_len = size - 8 - n
    table: dict[str, TensorEntry] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = meta["dtype"], tuple(int(d) for d in meta["shape"]), meta["data_offsets"]
            begin, end = int(begin), int(end)
        except (KeyError, TypeError, ValueError):
            raise SlmkitError(f"{path}: corrupt safetensors entry for tensor {name!r}") from None
        if dtype not in DTYPE_BYTES or any(d < 0 for d in shape):
            raise SlmkitError(f"{path}: tensor {name!r} has unsupported dtype {dtype} or shape {list(shape)}")
        entry = TensorEntry(dtype, shape, begin, end)
        if not 0 <= begin <= end <= data_len or end - begin != entry.numel * DTYPE_BYTES[dtype]:
            raise SlmkitError(f"{path}: tensor {name!r} lies outside the file or has the wrong size "
                              f"(truncated or corrupt file)")
        table[name] = entry
    return table
