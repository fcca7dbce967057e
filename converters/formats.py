"""The artifact formats and their type names, in one place for ``slmkit quantize`` and ``slmkit bench``.

GGUF types keep llama.cpp's names (files are named ``-Q4_K_M.gguf`` as llama.cpp's tools name them); ONNX
precisions are lower case. The two sets of names do not overlap, so a comma list may mix them.
"""
from __future__ import annotations

from collections.abc import Iterable

from slmkit.errors import SlmkitError

FORMATS = ("gguf", "onnx")


def parse_formats(values: Iterable[str]) -> list[str]:
    """Formats from repeated and / or comma-separated values ("gguf,onnx"), in order, each once."""
    out: list[str] = []
    for value in values:
        for f in value.split(","):
            f = f.strip().lower()
            if f and f not in FORMATS:
                raise SlmkitError(f"unknown format {f!r}; valid: {', '.join(FORMATS)}")
            if f and f not in out:
                out.append(f)
    if not out:
        raise SlmkitError(f"no format given; valid: {', '.join(FORMATS)}")
    return out


def split_quants(quants: Iterable[str]) -> dict[str, list[str]]:
    """Assign each type name to its format; ``all``: every type of both (but those needing an importance matrix)."""
    from slmkit.converters.gguf_quantize import NEEDS_IMATRIX, QUANTS
    from slmkit.converters.onnx_quantize import PRECISIONS

    if [q.strip().lower() for q in quants] == ["all"]:  # the types that need an importance matrix are asked for by name
        return {"gguf": [q for q in QUANTS if q not in NEEDS_IMATRIX], "onnx": list(PRECISIONS)}
    out: dict[str, list[str]] = {"gguf": [], "onnx": []}
    for q in quants:
        q = q.strip().lower()
        if q in QUANTS:
            out["gguf"].append(q)
        elif q in PRECISIONS:
            out["onnx"].append(q)
        elif q:
            raise SlmkitError(f"unknown type {q!r}; gguf: {', '.join(QUANTS)}; onnx: {', '.join(PRECISIONS)}")
    if not out["gguf"] and not out["onnx"]:
        raise SlmkitError(f"no type given; gguf: {', '.join(QUANTS)}; onnx: {', '.join(PRECISIONS)}")
    return {f: list(dict.fromkeys(qs)) for f, qs in out.items()}
