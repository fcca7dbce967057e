"""Quantize an f16 GGUF with llama.cpp's own quantizer (the llama-quantize code path).

llama.cpp silently falls back to another type where a tensor's rows do not fit a type's block size
(K-quants need rows divisible by 256, Q4_0/Q8_0 by 32) and still reports success, so every result is
read back and fallbacks are reported. GPT-2 ties its output head to ``token_embd``; llama.cpp then
quantizes that tensor with its output-tensor rule (Q6_K in K-quant and Q4_0 files, Q8_0 in Q8_0 files)
unless ``embedding_type`` overrides it.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from slmkit.errors import SlmkitError, held_interrupt
from slmkit.files import atomic_path
from slmkit.gguf_file import open_gguf

# name -> (llama_ftype attribute, the ggml types its main weights may use)
QUANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "f32": ("LLAMA_FTYPE_ALL_F32", ("F32",)),
    "f16": ("LLAMA_FTYPE_MOSTLY_F16", ("F16",)),
    "q8_0": ("LLAMA_FTYPE_MOSTLY_Q8_0", ("Q8_0",)),
    "q6_k": ("LLAMA_FTYPE_MOSTLY_Q6_K", ("Q6_K",)),
    "q5_k_m": ("LLAMA_FTYPE_MOSTLY_Q5_K_M", ("Q5_K", "Q6_K")),
    "q4_k_m": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", ("Q4_K", "Q6_K")),
    "q4_0": ("LLAMA_FTYPE_MOSTLY_Q4_0", ("Q4_0",)),
}
DEFAULT_QUANTS = ("q8_0", "q4_k_m")
EMBEDDING_TYPES = ("q8_0", "q6_k", "f16")
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


def quantize_gguf(src: Path, dest: Path, quant: str, threads: int = 0, embedding_type: str | None = None) -> QuantResult:
    """Quantize the f16/f32 GGUF ``src`` into ``dest`` (atomically); returns what it holds."""
    import llama_cpp

    if quant not in QUANTS or quant in ("f32", "f16"):
        raise SlmkitError(f"quantize_gguf takes one of {', '.join(q for q in QUANTS if q not in ('f32', 'f16'))}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTS[quant][0])
    params.nthread = threads
    if embedding_type is not None:
        if embedding_type not in EMBEDDING_TYPES:
            raise SlmkitError(f"unknown embedding type {embedding_type!r}; valid: {', '.join(EMBEDDING_TYPES)}")
        ggml = getattr(llama_cpp, f"GGML_TYPE_{embedding_type.upper()}")
        params.token_embedding_type = ggml
        params.output_tensor_type = ggml
    with atomic_path(dest) as tmp:
        with held_interrupt():  # else a Ctrl-C inside llama.cpp's log callback is lost
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if rc != 0:
            raise SlmkitError(f"llama.cpp failed to quantize {src.name} to {quant} (code {rc})")
        result = read_result(tmp, quant)
    return result
