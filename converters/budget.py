"""A quality budget: the smallest mixed-precision artifact whose mean KL on held-out texts is at most X.

Per format, a ladder of weight types, smallest first (GGUF: :class:`GgufLadder`, q3_k to q8_0 per tensor with
llama.cpp's tensor-type overrides; ONNX: :class:`OnnxLadder`, 4- or 8-bit MatMulNBits per MatMul). Then:

1. Sensitivity: for every weight tensor and every type of the ladder, the mean KL against the fp16 reference
   on a spread of :data:`SENSITIVITY_TEXTS` of the held-out calibration texts when only that tensor takes that type (quantized as the artifact will be:
   importance-weighted, error-compensated where the format allows), measured in the reference itself with the
   tensor's dequantized values swapped in.
2. Choice: start every tensor at the smallest type; while the summed KL (small perturbations add up nearly)
   exceeds the budget, give a larger type to the tensor that buys the most KL per byte.
3. Proof: write the artifact with llama.cpp's tensor-type overrides, compensate it, and measure its KL on all the
   held-out texts with llama.cpp itself (more texts than the sensitivities saw, so the choice is not fitted to them). Over X: tighten the budget by the measured excess and try again;
   still over after a few tries, or over even at the largest types: fail, naming the figure.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slmkit.errors import SlmkitError

TRIES = 4
SENSITIVITY_TEXTS = 60   # each (tensor, type) is one forward pass over these: its cost grows with them


@dataclass
class Recipe:
    types: dict[str, str]       # GGUF weight tensor -> ggml type
    predicted_kl: float
    measured_kl: float | None = None
    bits_per_weight: float | None = None

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for t in self.types.values():
            counts[t] = counts.get(t, 0) + 1
        return {"tensor_types_chosen": dict(sorted(self.types.items())), "type_counts": counts,
                "predicted_kl": round(self.predicted_kl, 6), "measured_kl": self.measured_kl}


def hf_param(gguf_name: str) -> tuple[str, bool]:
    """The reference's parameter holding a GGUF weight, and whether it is stored transposed (Conv1D)."""
    if gguf_name == "token_embd.weight":
        return "transformer.wte.weight", False
    _, layer, kind, _ = gguf_name.split(".")
    module = {"attn_qkv": "attn.c_attn", "attn_output": "attn.c_proj", "ffn_up": "mlp.c_fc", "ffn_down": "mlp.c_proj"}[kind]
    return f"transformer.h.{layer}.{module}.weight", True


class HeldOut:
    """The held-out texts in the reference: one padded batch, its fp16 logits, and KL of a changed model."""

    def __init__(self, reference: Any, texts: Sequence[str]):
        torch = reference._torch
        self.ref, self.torch = reference, torch
        ids = [reference.tokenize(t)[: reference.n_ctx] for t in texts]
        ids = [i for i in ids if len(i) >= 2]
        n = max(len(i) for i in ids)
        self.input = torch.zeros((len(ids), n), dtype=torch.long)
        self.mask = torch.zeros((len(ids), n), dtype=torch.long)
        for k, i in enumerate(ids):
            self.input[k, : len(i)] = torch.tensor(i)
            self.mask[k, : len(i)] = 1
        self.ids = ids
        self.valid = self.mask[:, 1:].bool()  # positions with a next token
        self.base = self._logprobs()

    def _logprobs(self):
        torch = self.torch
        with torch.inference_mode():
            out = self.ref._model(input_ids=self.input, attention_mask=self.mask, use_cache=False).logits[:, :-1]
        return torch.log_softmax(out.float(), dim=-1)

    def kl(self) -> float:
        lp = self._logprobs()
        kl = (self.base.exp() * (self.base - lp)).sum(-1)
        return float(kl[self.valid].mean().clamp(min=0))

    def kl_with(self, param: str, values: np.ndarray) -> float:
        """Mean KL with one parameter replaced by ``values`` (restored after)."""
        torch = self.torch
        p = self.ref._model.get_parameter(param)
        saved = p.data.clone()
        p.data.copy_(torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)))
        try:
            return self.kl()
        finally:
            p.data.copy_(saved)


class GgufLadder:
    """GGUF: every weight tensor but the position embedding at one of llama.cpp's types, importance-weighted and
    error-compensated, from the checked f16 ``source``."""
    fmt = "gguf"
    types = ("q3_k", "q4_k", "q6_k", "q8_0")
    bits = {"q3_k": 3.4375, "q4_k": 4.5, "q6_k": 6.5625, "q8_0": 8.5}

    def __init__(self, source: Path, scratch: Path, threads: int, imatrix: Any, hessians: dict):
        self.source, self.scratch, self.threads, self.imatrix, self.hessians = source, scratch, threads, imatrix, hessians

    def uniform(self, kind: str) -> dict[str, tuple[str, np.ndarray]]:
        """Every tensor at ``kind``: GGUF name -> (the reference's parameter, dequantized values in its layout)."""
        import gguf
        from gguf import quants

        from slmkit.gguf_file import open_gguf

        names = [n for n in open_gguf(self.source).row_lengths if n != "position_embd.weight"]
        path = self.scratch / f"uniform-{kind}.gguf"
        self.build(path, {n: kind for n in names})
        out = {}
        try:
            for t in gguf.GGUFReader(str(path)).tensors:
                if t.name in names and len(t.shape) == 2:
                    values = quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)
                    param, transposed = hf_param(t.name)
                    out[t.name] = (param, values.T if transposed else values)
        finally:
            path.unlink(missing_ok=True)
        return out

    def build(self, dest: Path, types: dict[str, str]) -> None:
        """The artifact with ``types`` (tensor -> ggml type), importance-weighted and compensated."""
        from slmkit.converters.gguf_quantize import quantize_gguf
        from slmkit.converters.gptq import compensate

        embd = types.get("token_embd.weight")
        quantize_gguf(self.source, dest, "q4_k_m", self.threads, embd if embd != "q3_k" else None,
                      imatrix=self.imatrix, tensor_types=types)
        compensate(self.source, dest, self.hessians)

    def open(self, path: Path) -> Any:
        from slmkit.runtimes.llamacpp import LlamaCppRuntime

        return LlamaCppRuntime(path, threads=self.threads or None)


class OnnxLadder:
    """ONNX: every MatMul (the output head too) as 4- or 8-bit symmetric MatMulNBits blocks of 32, error-compensated;
    embedding tables int8 blocks as in ``int4`` / ``int8``. The head's sensitivity is measured by changing the tied
    embedding/head parameter of the reference, which also moves its embedding (an upper bound)."""
    fmt = "onnx"
    types = ("int4", "int8")
    bits = {"int4": 5.0, "int8": 9.0}  # with one float32 scale per 32 values

    def __init__(self, folder: Any, hessians: dict):
        self.folder, self.hessians = folder, hessians

    def graph(self, types: dict[str, str] | None = None, uniform: str | None = None):
        """The quantized ModelProto: each MatMul weight (by initializer name) at its type."""
        from slmkit.converters.onnx_graph import build_gpt2
        from slmkit.converters.onnx_gptq import by_weight_name, compensate_graph, float_matmul_weights
        from slmkit.converters.onnx_quantize import _int8_embeddings, _matmul_nbits

        model = build_gpt2(self.folder, np.float32)
        weights = float_matmul_weights(model)
        types = types or {name: uniform for name in weights}
        for bits in (4, 8):
            chosen = [name for name, t in types.items() if t == f"int{bits}"]
            model = _matmul_nbits(model, bits, chosen)
        s = self.folder.shape
        compensate_graph(model, weights, by_weight_name(self.hessians, s.n_layer, s.tie_word_embeddings))
        _int8_embeddings(model)
        return model

    def uniform(self, kind: str) -> dict[str, tuple[str, np.ndarray]]:
        from slmkit.converters.onnx_gptq import read_blocks

        model = self.graph(uniform=kind)
        inits = {t.name: t for t in model.graph.initializer}
        out = {}
        for b in filter(None, (read_blocks(node, inits) for node in model.graph.node)):
            if b.name == "lm_head":
                param = "lm_head.weight" if not self.folder.shape.tie_word_embeddings else "transformer.wte.weight"
                out[b.name] = (param, b.values())
            else:
                out[b.name] = (f"transformer.{b.name}", b.values().T)  # HF Conv1D: [in, out]
        return out

    def build(self, dest: Path, types: dict[str, str]) -> None:
        from slmkit.converters.onnx_graph import set_metadata
        from slmkit.converters.onnx_quantize import _save

        model = self.graph(types)
        set_metadata(model, self.folder, {"precision": "mixed", "weights": "int4/int8 MatMulNBits by sensitivity",
                                          "block_size": 32, "accuracy_level": 4, "embedding": "int8 blocks"})
        _save(model, dest)

    def open(self, path: Path) -> Any:
        from slmkit.runtimes.onnxrt import OnnxRuntime

        return OnnxRuntime(path, threads=None, checked=True)


def sensitivities(ladder: Any, held: HeldOut, log: Callable[[str], None]) -> tuple[dict[tuple[str, str], float],
                                                                                    dict[str, int]]:
    """(tensor, type) -> mean held-out KL with only that tensor at that type; and each tensor's size."""
    t0 = time.time()
    kl: dict[tuple[str, str], float] = {}
    sizes: dict[str, int] = {}
    for kind in ladder.types:
        for name, (param, values) in ladder.uniform(kind).items():
            sizes[name] = values.size
            kl[(name, kind)] = held.kl_with(param, values)
    log(f"sensitivity: {len(sizes)} tensors x {len(ladder.types)} types on {int(held.valid.sum())} held-out tokens "
        f"({time.time() - t0:.1f}s)")
    return kl, sizes


def choose(kl: dict[tuple[str, str], float], sizes: dict[str, int], budget: float, ladder: Any) -> Recipe:
    """The greedy knapsack: cheapest types, then the best KL-per-byte upgrades until the sum fits ``budget``."""
    types, bits = ladder.types, ladder.bits
    level = {name: 0 for name in sizes}
    total = sum(kl[(n, types[0])] for n in sizes)
    while total > budget:
        best, gain = None, 0.0
        for n, k in level.items():
            if k + 1 < len(types):
                saved = kl[(n, types[k])] - kl[(n, types[k + 1])]
                cost = sizes[n] * (bits[types[k + 1]] - bits[types[k]])
                if saved / cost > gain or best is None:
                    best, gain = n, saved / cost
        if best is None:
            break
        total += kl[(best, types[level[best] + 1])] - kl[(best, types[level[best]])]
        level[best] += 1
    return Recipe({n: types[k] for n, k in level.items()}, total)


def measured_kl(runtime: Any, reference: Any, texts: Sequence[str]) -> float:
    """Mean KL of an artifact's runtime on ``texts`` against the reference's logits (one text at a time: a large
    vocabulary's log-probabilities for hundreds of texts do not fit in memory at once)."""
    from slmkit.metrics import kl_divergence, log_softmax

    total, count = 0.0, 0
    for text in texts:
        ids = reference.tokenize(text)[: reference.n_ctx]
        if len(ids) < 2:
            continue
        ref = log_softmax(reference.score(ids)[:-1].astype(np.float64))
        lp = log_softmax(runtime.score(ids)[:-1, : ref.shape[1]])
        total += float(kl_divergence(ref, lp).sum())
        count += len(ids) - 1
    return total / max(count, 1)


def quantize_to_budget(ladder: Any, dest: Path, max_kl: float, reference: Any, held_texts: Sequence[str],
                       log: Callable[[str], None], sens: tuple[dict, dict] | None = None
                       ) -> tuple[Recipe, tuple[dict, dict]]:
    """Write the smallest artifact (by this search) whose held-out mean KL is at most ``max_kl``; returns its
    recipe and the sensitivities (to reuse for another budget)."""
    if sens is None:
        step = max(1, len(held_texts) // SENSITIVITY_TEXTS)
        sens = sensitivities(ladder, HeldOut(reference, list(held_texts)[::step][:SENSITIVITY_TEXTS]), log)
    kl, sizes = sens
    budget = max_kl
    top = ladder.types[-1]
    for attempt in range(TRIES):
        recipe = choose(kl, sizes, budget, ladder)
        ladder.build(dest, recipe.types)
        with ladder.open(dest) as rt:
            recipe.measured_kl = measured_kl(rt, reference, held_texts)
        log(f"--max-kl {max_kl:g} ({ladder.fmt}): try {attempt + 1}: predicted {recipe.predicted_kl:.5f}, measured "
            f"{recipe.measured_kl:.5f} on {len(held_texts)} held-out texts")
        if recipe.measured_kl <= max_kl:
            return recipe, sens
        if all(t == top for t in recipe.types.values()):
            break
        budget *= 0.9 * max_kl / recipe.measured_kl
    dest.unlink(missing_ok=True)
    largest = all(t == top for t in recipe.types.values())
    raise SlmkitError(f"--max-kl {max_kl:g} was not met: the best {ladder.fmt} artifact measured mean KL "
                      f"{recipe.measured_kl:.5f} on held-out texts{' with every tensor at ' + top if largest else ''}")
