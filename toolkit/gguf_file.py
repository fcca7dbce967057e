"""Validate a GGUF file and read what slmkit needs from it, before llama.cpp ever sees it.

llama.cpp answers a malformed file with a bare "Failed to load model", or aborts the whole process on an
assertion. Here the file is parsed in Python with every length and count checked against the bytes that
remain (a hostile count cannot make a loop run past the file), then checked for what llama.cpp asserts
on: tensors inside the file, a known architecture, GPT-2 hyper-parameters that agree with the tensors, a
vocabulary without duplicates or NUL bytes and special token ids inside it. Each defect is one line.
(The ``gguf`` package's reader is not used here: it trusts the counts, and takes 2 s on a 124M file.)
"""
from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slmkit.errors import SlmkitError
from slmkit.tokenizer import TextTokenizer

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
SUPPORTED_ARCHS = ("gpt2",)
MAX_COUNT = 1 << 20  # tensors or metadata keys: far beyond any GPT-2
MAX_DIMS = 4
DEFAULT_ALIGNMENT = 32
# GGUF value types -> numpy dtype of the scalar ones; 8 = string, 9 = array.
SCALARS = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8",
           12: "<f8"}
STRING, ARRAY = 8, 9
# Metadata keys under the architecture prefix that a GPT-2 file may carry (llama.cpp reads each it finds).
ARCH_KEYS = frozenset({"context_length", "embedding_length", "feed_forward_length", "block_count", "vocab_size",
                       "attention.head_count", "attention.head_count_kv", "attention.layer_norm_epsilon"})
SPECIAL_IDS = ("bos", "eos", "unknown", "separator", "padding")
CONTROL = 3  # llama.cpp's token type for control tokens


class _Bad(Exception):
    """A length, count or type that the file cannot hold."""


@dataclass
class GgufTensor:
    name: str
    dims: tuple[int, ...]  # GGUF order: the fastest-varying dimension first
    type_name: str
    offset: int  # from the start of the file
    n_elements: int
    n_bytes: int


@dataclass
class GgufInfo:
    """What a validated GGUF file declares."""

    path: Path
    arch: str
    context_length: int
    n_embd: int
    n_layer: int
    file_type: int | None
    tensor_types: dict[str, str]  # tensor name -> ggml type name
    n_params: int
    tensor_bytes: int
    metadata: dict[str, object] = field(default_factory=dict, repr=False)
    row_lengths: dict[str, int] = field(default_factory=dict, repr=False)  # 2-D tensor name -> values per row

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.tensor_bytes / self.n_params


class _Cursor:
    """Reads little-endian GGUF values from a buffer, never past its end."""

    def __init__(self, buf, pos: int):
        self.buf, self.pos = buf, pos

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > len(self.buf):
            raise _Bad
        self.pos += n
        return start

    def u32(self) -> int:
        return struct.unpack_from("<I", self.buf, self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack_from("<Q", self.buf, self.take(8))[0]

    def string(self) -> str:
        n = self.u64()
        start = self.take(n)
        return bytes(self.buf[start:start + n]).decode("utf-8")

    def value(self, vtype: int, top: bool = True) -> object:
        if vtype in SCALARS:
            dtype = np.dtype(SCALARS[vtype])
            v = np.frombuffer(self.buf, dtype, 1, self.take(dtype.itemsize))[0].item()
            return bool(v) if vtype == 7 else v
        if vtype == STRING:
            return self.string()
        if vtype == ARRAY and top:
            etype, count = self.u32(), self.u64()
            if etype in SCALARS:
                dtype = np.dtype(SCALARS[etype])
                if count > (len(self.buf) - self.pos) // dtype.itemsize:
                    raise _Bad
                return np.frombuffer(self.buf, dtype, count, self.take(count * dtype.itemsize)).copy()
            if etype != STRING or count > (len(self.buf) - self.pos) // 8:
                raise _Bad  # nested arrays, unknown types, or more strings than bytes left
            return [self.string() for _ in range(count)]
        raise _Bad


def _parse(buf, path: Path) -> tuple[dict[str, object], list[GgufTensor]]:
    import gguf  # only for the table of ggml type names and block sizes

    if len(buf) < 24:
        raise SlmkitError(f"{path}: truncated GGUF file ({len(buf)} bytes)")
    if bytes(buf[:4]) != MAGIC:
        raise SlmkitError(f"{path}: not a GGUF file (bad magic {bytes(buf[:4])!r})")
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
    if version not in SUPPORTED_VERSIONS:
        raise SlmkitError(f"{path}: unsupported GGUF version {version}")
    if n_tensors > MAX_COUNT or n_kv > MAX_COUNT:
        raise SlmkitError(f"{path}: corrupt GGUF header ({n_tensors} tensors, {n_kv} metadata keys)")
    cur = _Cursor(buf, 24)
    meta: dict[str, object] = {}
    raw = []
    try:
        for _ in range(n_kv):
            key = cur.string()
            meta[key] = cur.value(cur.u32())
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.u32()
            if not 1 <= n_dims <= MAX_DIMS:
                raise _Bad
            dims = struct.unpack_from(f"<{n_dims}Q", buf, cur.take(8 * n_dims))
            raw.append((name, dims, cur.u32(), cur.u64()))
    except (_Bad, UnicodeDecodeError):
        raise SlmkitError(f"{path}: corrupt or truncated GGUF metadata (a length, count or type does not fit "
                          "the file)") from None
    align = meta.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(align, int) or align <= 0 or align & (align - 1):
        raise SlmkitError(f"{path}: corrupt GGUF alignment {align}")
    data_start = -(-cur.pos // align) * align
    tensors = []
    for name, dims, type_id, offset in raw:
        try:
            qtype = gguf.GGMLQuantizationType(type_id)
        except ValueError:
            raise SlmkitError(f"{path}: tensor {name} has unknown type {type_id}") from None
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        n = int(np.prod(dims, dtype=object))
        if any(d <= 0 for d in dims) or n > 1 << 40 or dims[0] % block:
            raise SlmkitError(f"{path}: tensor {name} has impossible dimensions {list(dims)}")
        tensors.append(GgufTensor(name, tuple(int(d) for d in dims), qtype.name, data_start + offset, n,
                                  n // block * type_size))
    return meta, tensors


def open_gguf(path: str | Path) -> GgufInfo:
    """Validate a GGUF file; returns what it declares (metadata included)."""
    path = Path(path)
    if not path.is_file():
        raise SlmkitError(f"no such GGUF file: {path}")
    size = path.stat().st_size
    if size < 24:
        raise SlmkitError(f"{path}: truncated GGUF file ({size} bytes)")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        meta, tensors = _parse(buf, path)
    arch = meta.get("general.architecture")
    if arch not in SUPPORTED_ARCHS:
        raise SlmkitError(f"{path}: unsupported architecture {arch!r}; slmkit runs GPT-2 (gpt2) GGUF files")
    types = {}
    for t in tensors:
        if t.offset + t.n_bytes > size:
            raise SlmkitError(f"{path}: tensor {t.name} lies outside the file (truncated or corrupt)")
        types[t.name] = t.type_name
    if "token_embd.weight" not in types:
        raise SlmkitError(f"{path}: GGUF file lacks token_embd.weight")
    hp = {k: meta.get(f"{arch}.{k}") for k in ("context_length", "embedding_length", "block_count",
                                                  "attention.head_count", "feed_forward_length")}
    for name, v in hp.items():
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= 1 << 24:
            raise SlmkitError(f"{path}: GGUF metadata has {arch}.{name} = {v}")
    eps = meta.get(f"{arch}.attention.layer_norm_epsilon")
    if not isinstance(eps, float) or not 0.0 < eps <= 0.1:  # llama.cpp aborts on a negative one; NaN fails too
        raise SlmkitError(f"{path}: GGUF metadata has {arch}.attention.layer_norm_epsilon = {eps}")
    kv_heads = meta.get(f"{arch}.attention.head_count_kv", hp["attention.head_count"])
    if isinstance(kv_heads, bool) or not isinstance(kv_heads, int) or not 0 < kv_heads <= hp["attention.head_count"] \
            or hp["attention.head_count"] % kv_heads:
        raise SlmkitError(f"{path}: GGUF metadata has {arch}.attention.head_count_kv = {kv_heads}")
    unknown = sorted(k for k in meta if k.startswith(f"{arch}.") and k[len(arch) + 1:] not in ARCH_KEYS)
    if unknown:  # e.g. an expert count: llama.cpp would read it and could abort; a GPT-2 has none
        raise SlmkitError(f"{path}: GGUF metadata has keys a GPT-2 does not: {', '.join(unknown[:3])}")
    if hp["embedding_length"] % hp["attention.head_count"]:
        raise SlmkitError(f"{path}: embedding_length {hp['embedding_length']} is not a multiple of head_count "
                          f"{hp['attention.head_count']}")
    blocks = {n.split(".")[1] for n in types if n.startswith("blk.")}
    if blocks != {str(i) for i in range(hp["block_count"])}:
        raise SlmkitError(f"{path}: block_count {hp['block_count']} does not match the {len(blocks)} blocks of tensors")
    embd = next(t for t in tensors if t.name == "token_embd.weight")
    rows = embd.dims[1] if len(embd.dims) > 1 else None
    _check_vocab(meta, path, rows)
    if f"{arch}.vocab_size" in meta and meta[f"{arch}.vocab_size"] != rows:
        raise SlmkitError(f"{path}: GGUF metadata has {arch}.vocab_size = {meta[f'{arch}.vocab_size']}, "
                          f"the embedding has {rows} rows")
    file_type = meta.get("general.file_type")
    return GgufInfo(path, arch, hp["context_length"], hp["embedding_length"], hp["block_count"],
                    file_type if isinstance(file_type, int) else None, types,
                    sum(t.n_elements for t in tensors), sum(t.n_bytes for t in tensors), meta,
                    {t.name: t.dims[0] for t in tensors if len(t.dims) >= 2})


def _check_vocab(meta: dict, path: Path, rows: int | None) -> None:
    """What llama.cpp asserts on while loading a vocabulary (it would abort the process)."""
    tokens = meta.get("tokenizer.ggml.tokens")
    if tokens is None:
        return
    if not isinstance(tokens, list):
        raise SlmkitError(f"{path}: corrupt GGUF vocabulary (not a list of strings)")
    if len(set(tokens)) != len(tokens) or any("\x00" in t or not t for t in tokens):
        raise SlmkitError(f"{path}: corrupt GGUF vocabulary (empty or duplicate tokens, or NUL bytes)")
    if rows is not None and rows != len(tokens):
        raise SlmkitError(f"{path}: vocabulary of {len(tokens)} tokens for an embedding of {rows} rows")
    kinds = meta.get("tokenizer.ggml.token_type")
    if kinds is not None and (not isinstance(kinds, np.ndarray) or len(kinds) != len(tokens)
                              or kinds.min(initial=1) < 0 or kinds.max(initial=1) > 6):
        raise SlmkitError(f"{path}: corrupt GGUF token types")
    merges = meta.get("tokenizer.ggml.merges")
    if merges is not None and (not isinstance(merges, list) or any(m.count(" ") != 1 or "\x00" in m for m in merges)):
        raise SlmkitError(f"{path}: corrupt GGUF merges")
    for name in SPECIAL_IDS:
        tid = meta.get(f"tokenizer.ggml.{name}_token_id")
        if tid is not None and (not isinstance(tid, int) or isinstance(tid, bool)):
            raise SlmkitError(f"{path}: {name} token id {tid!r} is not an integer")
        if tid is not None and not 0 <= tid < len(tokens):
            raise SlmkitError(f"{path}: {name} token id {tid} is outside the vocabulary of {len(tokens)}")


def gguf_tokenizer(info: GgufInfo) -> TextTokenizer:
    """The HF-equivalent tokenizer stored in a GGUF file (tokens, merges, control tokens)."""
    tokens = info.metadata.get("tokenizer.ggml.tokens")
    merges = info.metadata.get("tokenizer.ggml.merges")
    types = info.metadata.get("tokenizer.ggml.token_type")
    if not tokens or merges is None or types is None or len(types) != len(tokens):
        raise SlmkitError(f"{info.path}: GGUF file has no complete GPT-2 tokenizer")
    control = [t for t, k in zip(tokens, types) if k == CONTROL]
    return TextTokenizer.from_vocab(list(tokens), list(merges), control, info.path)
