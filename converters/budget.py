"""A quality budget: the smallest mixed-precision GGUF whose mean KL on held-out texts is at most X.

1. Sensitivity: for every weight tensor and every type of :data:`LADDER`, the mean KL against the fp16 reference
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

LADDER = ("q3_k", "q4_k", "q6_k", "q8_0")        # smallest first
BITS = {"q3_k": 3.4375, "q4_k": 4.5, "q6_k": 6.5625, "q8_0": 8.5}
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


def uniform_file(source: Path, dest: Path, kind: str, threads: int, imatrix: Any, hessians: dict) -> None:
    """Every weight tensor of ``source`` at ``kind``, as the artifact would quantize it."""
    from slmkit.gguf_file import open_gguf

    names = [n for n in open_gguf(source).row_lengths if n != "position_embd.weight"]
    build(source, dest, {n: kind for n in names}, threads, imatrix, hessians)


def dequantized(path: Path) -> dict[str, np.ndarray]:
    import gguf
    from gguf import quants

    out = {}
    for t in gguf.GGUFReader(str(path)).tensors:
        if t.name.endswith(".weight") and len(t.shape) == 2 and t.name != "position_embd.weight":
            out[t.name] = quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)
    return out


def sensitivities(source: Path, held: HeldOut, imatrix: Any, hessians: dict, scratch: Path, threads: int,
                  log: Callable[[str], None]) -> tuple[dict[tuple[str, str], float], dict[str, int]]:
    """(tensor, type) -> mean held-out KL with only that tensor at that type; and each tensor's size."""
    t0 = time.time()
    kl: dict[tuple[str, str], float] = {}
    sizes: dict[str, int] = {}
    for kind in LADDER:
        path = scratch / f"uniform-{kind}.gguf"
        uniform_file(source, path, kind, threads, imatrix, hessians)
        for name, values in dequantized(path).items():
            param, transposed = hf_param(name)
            sizes[name] = values.size
            kl[(name, kind)] = held.kl_with(param, values.T if transposed else values)
        path.unlink()
    log(f"sensitivity: {len(sizes)} tensors x {len(LADDER)} types on {int(held.valid.sum())} held-out tokens "
        f"({time.time() - t0:.1f}s)")
    return kl, sizes


def choose(kl: dict[tuple[str, str], float], sizes: dict[str, int], budget: float) -> Recipe:
    """The greedy knapsack: cheapest types, then the best KL-per-byte upgrades until the sum fits ``budget``."""
    level = {name: 0 for name in sizes}
    total = sum(kl[(n, LADDER[0])] for n in sizes)
    while total > budget:
        best, gain = None, 0.0
        for n, k in level.items():
            if k + 1 < len(LADDER):
                saved = kl[(n, LADDER[k])] - kl[(n, LADDER[k + 1])]
                cost = sizes[n] * (BITS[LADDER[k + 1]] - BITS[LADDER[k]])
                if saved / cost > gain or best is None:
                    best, gain = n, saved / cost
        if best is None:
            break
        total += kl[(best, LADDER[level[best] + 1])] - kl[(best, LADDER[level[best]])]
        level[best] += 1
    return Recipe({n: LADDER[k] for n, k in level.items()}, total)


def build(source: Path, dest: Path, types: dict[str, str], threads: int, imatrix: Any, hessians: dict) -> None:
    """The artifact with ``types`` (tensor -> ggml type), importance-weighted and compensated."""
    from slmkit.converters.gguf_quantize import quantize_gguf
    from slmkit.converters.gptq import compensate

    embd = types.get("token_embd.weight")
    quantize_gguf(source, dest, "q4_k_m", threads, embd if embd != "q3_k" else None, imatrix=imatrix,
                  tensor_types=types)
    compensate(source, dest, hessians)


def measured_kl(path: Path, reference: Any, texts: Sequence[str], threads: int) -> float:
    """Mean KL of an artifact on ``texts``, run by llama.cpp, against the reference's logits (one text at a time:
    a large vocabulary's log-probabilities for hundreds of texts do not fit in memory at once)."""
    from slmkit.runtimes.llamacpp import LlamaCppRuntime

    from slmkit.metrics import kl_divergence, log_softmax

    total, count = 0.0, 0
    with LlamaCppRuntime(path, threads=threads or None) as rt:
        for text in texts:
            ids = reference.tokenize(text)[: reference.n_ctx]
            if len(ids) < 2:
                continue
            ref = log_softmax(reference.score(ids)[:-1].astype(np.float64))
            lp = log_softmax(rt.score(ids)[:-1, : ref.shape[1]])
            total += float(kl_divergence(ref, lp).sum())
            count += len(ids) - 1
    return total / max(count, 1)


def quantize_to_budget(source: Path, dest: Path, max_kl: float, reference: Any, held_texts: Sequence[str],
                       imatrix: Any, hessians: dict, threads: int, log: Callable[[str], None],
                       sens: tuple[dict, dict] | None = None) -> tuple[Recipe, tuple[dict, dict]]:
    """Write the smallest artifact (by this search) whose held-out mean KL is at most ``max_kl``; returns its
    recipe and the sensitivities (to reuse for another budget)."""
    step = max(1, len(held_texts) // SENSITIVITY_TEXTS)
    held = HeldOut(reference, list(held_texts)[::step][:SENSITIVITY_TEXTS])
    if sens is None:
        sens = sensitivities(source, held, imatrix, hessians, dest.parent, threads, log)
    kl, sizes = sens
    budget = max_kl
    for attempt in range(TRIES):
        recipe = choose(kl, sizes, budget)
        build(source, dest, recipe.types, threads, imatrix, hessians)
        recipe.measured_kl = measured_kl(dest, reference, held_texts, threads)
        log(f"--max-kl {max_kl:g}: try {attempt + 1}: predicted {recipe.predicted_kl:.5f}, measured "
            f"{recipe.measured_kl:.5f} on {len(held_texts)} held-out texts")
        if recipe.measured_kl <= max_kl:
            return recipe, sens
        if all(t == LADDER[-1] for t in recipe.types.values()):
            break
        budget *= 0.9 * max_kl / recipe.measured_kl
    dest.unlink(missing_ok=True)
    largest = all(t == LADDER[-1] for t in recipe.types.values())
    raise SlmkitError(f"--max-kl {max_kl:g} was not met: the best artifact measured mean KL {recipe.measured_kl:.5f} "
                      f"on held-out texts{' with every tensor at ' + LADDER[-1] if largest else ''}")
