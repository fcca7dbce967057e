"""Quantize an f16 GGUF with llama.cpp's own quantizer (the llama-quantize code path).

llama.cpp silently falls back to another type where a tensor's rows do not fit a type's block size
(K-quants need rows divisible by 256, Q4_0/Q8_0 by 32) and still reports success, so every result is
read back and fallbacks are reported. GPT-2 ties its output head to ``token_embd``; llama.cpp then
quantizes that tensor with its output-tensor rule (Q6_K in K-quant and Q4_0 files, Q8_0 in Q8_0 files)
unless ``embedding_type`` overrides it.

With an importance matrix (:mod:`slmkit.converters.imatrix`) llama.cpp weighs each weight's rounding error
by how large its input column runs on calibration text; the IQ and low-bit K types lean on it, and the types
in :data:`NEEDS_IMATRIX` refuse to run without one. ``tensor_types`` pins single tensors to other types
(llama.cpp's tensor-type overrides), for mixed-precision recipes.
"""
from __future__ import annotations

import ctypes
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from slmkit.errors import SlmkitError, held_interrupt
from slmkit.files import atomic_path
from slmkit.gguf_file import open_gguf

if TYPE_CHECKING:
    from slmkit.converters.imatrix import ImportanceMatrix

# name -> (llama_ftype attribute, the ggml types its main weights may use)
QUANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "f32": ("LLAMA_FTYPE_ALL_F32", ("F32",)),
    "f16": ("LLAMA_FTYPE_MOSTLY_F16", ("F16",)),
    "q8_0": ("LLAMA_FTYPE_MOSTLY_Q8_0", ("Q8_0",)),
    "q6_k": ("LLAMA_FTYPE_MOSTLY_Q6_K", ("Q6_K",)),
    "q5_k_m": ("LLAMA_FTYPE_MOSTLY_Q5_K_M", ("Q5_K", "Q6_K")),
    "q4_k_m": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", ("Q4_K", "Q6_K")),
    "q4_0": ("LLAMA_FTYPE_MOSTLY_Q4_0", ("Q4_0",)),
    "q4_k_s": ("LLAMA_FTYPE_MOSTLY_Q4_K_S", ("Q4_K", "Q5_K")),
    "iq4_xs": ("LLAMA_FTYPE_MOSTLY_IQ4_XS", ("IQ4_XS",)),
    "iq4_nl": ("LLAMA_FTYPE_MOSTLY_IQ4_NL", ("IQ4_NL",)),
    "q3_k_m": ("LLAMA_FTYPE_MOSTLY_Q3_K_M", ("Q3_K", "Q4_K", "Q5_K")),
    "q3_k_s": ("LLAMA_FTYPE_MOSTLY_Q3_K_S", ("Q3_K",)),
    "q2_k": ("LLAMA_FTYPE_MOSTLY_Q2_K", ("Q2_K", "Q3_K", "Q4_K")),
    "iq3_xxs": ("LLAMA_FTYPE_MOSTLY_IQ3_XXS", ("IQ3_XXS", "IQ3_S", "Q4_K")),
    "q2_k_s": ("LLAMA_FTYPE_MOSTLY_Q2_K_S", ("Q2_K", "Q4_K")),
}
NEEDS_IMATRIX = ("iq3_xxs", "q2_k_s")  # llama.cpp refuses these without an importance matrix
DEFAULT_QUANTS = ("q8_0", "q4_k_m")
EMBEDDING_TYPES = ("q8_0", "q6_k", "q5_k", "q4_k", "f16")
# what a tensor-type override may name (ggml types)
TENSOR_TYPES = ("f16", "q8_0", "q6_k", "q5_k", "q4_k", "q4_0", "iq4_xs", "iq4_nl", "q3_k", "q2_k")
UNQUANTIZED = ("token_embd.weight", "position_embd.weight")


@dataclass
class QuantResult:
    quant: str
    tensor_types: dict[str, str]
    embedding_type: str
    fallbacks: dict[str, str]  # tensor -> type it got instead of the requested family
    bits_per_weight: float

    def summary(self) -> dict:
        return {"tensor_types": dict(Counter(self.tensor_types.values())), "embedding_type": self.embedding_type,
                "position_embedding_type": self.tensor_types.get("position_embd.weight"),
                "fallbacks": self.fallbacks, "bits_per_weight": round(self.bits_per_weight, 3)}


def read_result(path: Path, quant: str) -> QuantResult:
    """Tensor types of a written file, with every weight that missed its requested type family."""
    info = open_gguf(path)
    family = QUANTS[quant][1]
    fallbacks = {name: t for name, t in info.tensor_types.items()
                 if name.endswith(".weight") and name not in UNQUANTIZED
                 and not name.endswith("norm.weight") and t not in family}
    return QuantResult(quant, info.tensor_types, info.tensor_types["token_embd.weight"], fallbacks,
                       info.bits_per_weight)


def quantize_gguf(src: Path, dest: Path, quant: str, threads: int = 0, embedding_type: str | None = None,
                  imatrix: "ImportanceMatrix | None" = None, tensor_types: dict[str, str] | None = None) -> QuantResult:
    """Quantize the f16/f32 GGUF ``src`` into ``dest`` (atomically); returns what it holds. ``imatrix``: importance
    weights for the rounding (checked against ``src`` first); ``tensor_types``: tensor name -> ggml type."""
    import llama_cpp

    from slmkit.converters.imatrix import NativeImatrix

    if quant not in QUANTS or quant in ("f32", "f16"):
        raise SlmkitError(f"quantize_gguf takes one of {', '.join(q for q in QUANTS if q not in ('f32', 'f16'))}")
    if quant in NEEDS_IMATRIX and imatrix is None:
        raise SlmkitError(f"{quant} needs an importance matrix: pass --calibration FILE (or demo) or --imatrix FILE")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTS[quant][0])
    params.nthread = threads
    if embedding_type is not None:
        if embedding_type not in EMBEDDING_TYPES:
            raise SlmkitError(f"unknown embedding type {embedding_type!r}; valid: {', '.join(EMBEDDING_TYPES)}")
        ggml = getattr(llama_cpp, f"GGML_TYPE_{embedding_type.upper()}")
        params.token_embedding_type = ggml
        params.output_tensor_type = ggml
    keep: list[object] = []
    if imatrix is not None:
        imatrix.check_against(open_gguf(src).row_lengths, str(src))
        native = NativeImatrix(imatrix)
        keep.append(native)
        params.imatrix = native.pointer
    if tensor_types:
        overrides = (llama_cpp.llama_model_tensor_override * (len(tensor_types) + 1))()
        for i, (name, kind) in enumerate(sorted(tensor_types.items())):
            if kind not in TENSOR_TYPES:
                raise SlmkitError(f"unknown tensor type {kind!r} for {name}; valid: {', '.join(TENSOR_TYPES)}")
            pattern = f"^{re.escape(name)}$".encode()
            keep.append(pattern)
            overrides[i].pattern = pattern
            overrides[i].type = getattr(llama_cpp, f"GGML_TYPE_{kind.upper()}")
        overrides[len(tensor_types)].pattern = None
        keep.append(overrides)
        params.tt_overrides = ctypes.cast(overrides, ctypes.POINTER(llama_cpp.llama_model_tensor_override))
    with atomic_path(dest) as tmp:
        with held_interrupt():  # else a Ctrl-C inside llama.cpp's log callback is lost
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if rc != 0:
            raise SlmkitError(f"llama.cpp failed to quantize {src.name} to {quant} (code {rc})")
        result = read_result(tmp, quant)
    del keep
    return result
