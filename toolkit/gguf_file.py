"""Validate a GGUF file and read what slmkit needs from it, before llama.cpp ever sees it.

llama.cpp answers a malformed file with a bare "Failed to load model" or worse; here the header, the
version, the tensor table (offsets and sizes inside the file) and the architecture are checked in
Python (the ``gguf`` package's reader, memory-mapped), and each defect is one clear line.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from slmkit.errors import SlmkitError
from slmkit.tokenizer import TextTokenizer

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
SUPPORTED_ARCHS = ("gpt2",)
MAX_COUNT = 1 << 20  # tensors or metadata keys: far beyond any GPT-2


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

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.tensor_bytes / self.n_params


def _field(reader, key: str):
    f = reader.fields.get(key)
    if f is None:
        return None
    return f.contents()


def open_gguf(path: str | Path) -> tuple[GgufInfo, object]:
    """Validate a GGUF file; returns its info and the open ``gguf.GGUFReader``."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise SlmkitError(f"no such GGUF file: {path}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24:
        raise SlmkitError(f"{path}: truncated GGUF file ({size} bytes)")
    if head[:4] != MAGIC:
        raise SlmkitError(f"{path}: not a GGUF file (bad magic {head[:4]!r})")
    version, n_tensors, n_kv = struct.unpack("<IQQ", head[4:24])
    if version not in SUPPORTED_VERSIONS:
        raise SlmkitError(f"{path}: unsupported GGUF version {version}")
    if n_tensors > MAX_COUNT or n_kv > MAX_COUNT:
        raise SlmkitError(f"{path}: corrupt GGUF header ({n_tensors} tensors, {n_kv} metadata keys)")
    try:
        reader = gguf.GGUFReader(path, "r")
    except Exception as e:  # the reader raises ValueError, IndexError, struct.error, ... on garbage
        raise SlmkitError(f"{path}: corrupt or truncated GGUF file ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:100] if str(e) else ''})") from None
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHS:
        raise SlmkitError(f"{path}: unsupported architecture {arch!r}; slmkit runs GPT-2 (gpt2) GGUF files")
    types: dict[str, str] = {}
    n_params = n_bytes = 0
    for t in reader.tensors:
        end = int(t.data_offset) + int(t.n_bytes)
        if end > size or t.data.size * t.data.itemsize < int(t.n_bytes):
            raise SlmkitError(f"{path}: tensor {t.name} lies outside the file (truncated or corrupt)")
        types[t.name] = t.tensor_type.name
        n_params += int(t.n_elements)
        n_bytes += int(t.n_bytes)
    if "token_embd.weight" not in types:
        raise SlmkitError(f"{path}: GGUF file lacks token_embd.weight")
    try:
        info = GgufInfo(path, arch, int(_field(reader, f"{arch}.context_length")),
                        int(_field(reader, f"{arch}.embedding_length")), int(_field(reader, f"{arch}.block_count")),
                        _field(reader, "general.file_type"), types, n_params, n_bytes)
    except (TypeError, ValueError):
        raise SlmkitError(f"{path}: GGUF metadata lacks the gpt2 context, embedding or block count") from None
    return info, reader


def gguf_tokenizer(reader, path: Path) -> TextTokenizer:
    """The HF-equivalent tokenizer stored in a GGUF file (tokens, merges, control tokens)."""
    tokens = _field(reader, "tokenizer.ggml.tokens")
    merges = _field(reader, "tokenizer.ggml.merges")
    types = _field(reader, "tokenizer.ggml.token_type")
    if not tokens or merges is None or types is None or len(types) != len(tokens):
        raise SlmkitError(f"{path}: GGUF file has no complete GPT-2 tokenizer")
    control = [t for t, k in zip(tokens, types) if k == 3]  # gguf.TokenType.CONTROL
    return TextTokenizer.from_vocab(list(tokens), list(merges), control, path)
