"""Checks run at quantize time; a failed check fails the command with a clear message.

- tokenizer parity: the artifact runtime's own tokenization equals the HF tokenizer's on evaluation
  texts, control tokens included (GGUF);
- fidelity: the unquantized artifact's logits match the fp16 reference's on evaluation texts;
- onnx.checker passes, and prefill + one cached decode step equals a full forward pass (ONNX).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from slmkit.metrics import summarize_drift, token_drift
from slmkit.errors import SlmkitError, first_line
from slmkit.model_folder import ModelFolder
from slmkit.onnx_file import checker_error
from slmkit.runtimes.base import Runtime
from slmkit.tokenizer import TextTokenizer

# Max |Δlogit| allowed for an f16/f32 artifact, relative to the reference's logit spread (1 + std).
FIDELITY_TOLERANCE = 0.05


def tokenizer_parity(tokenize: Callable[[str], list[int]], reference: TextTokenizer, texts: list[str]) -> dict:
    mismatches = [t for t in texts if tokenize(t) != reference.encode(t)]
    result = {"texts": len(texts), "mismatches": len(mismatches), "passed": not mismatches}
    if mismatches:
        result["first_mismatch"] = mismatches[0][:200]
    return result


def fidelity(runtime: Runtime, reference: Runtime, texts: list[str]) -> dict:
    max_diff, spread, drift = 0.0, 0.0, []
    for text in texts:
        ids = reference.tokenize(text)[: reference.n_ctx]
        if len(ids) < 2:
            continue  # nothing to predict
        want, got = reference.score(ids), runtime.score(ids)
        max_diff = max(max_diff, float(np.abs(want - got).max()))
        spread = max(spread, float(want.std()))
        drift.append(token_drift(want, got, ids))
    stats = summarize_drift(drift)
    limit = FIDELITY_TOLERANCE * (1.0 + spread)
    return {"texts": len(texts), "max_abs_diff": max_diff, "logit_std": spread, "limit": limit,
            "mean_kl": stats["mean_kl"], "same_top1": stats["same_top1"], "passed": max_diff <= limit}


def transformers_encoder(folder: ModelFolder) -> Callable[[str], list[int]]:
    """The encode function of transformers' own tokenizer for ``folder`` (the fp16 reference's library)."""
    from transformers import AutoTokenizer

    try:
        hf = AutoTokenizer.from_pretrained(str(folder.path), local_files_only=True)
    except Exception as e:  # transformers raises many types for odd tokenizer files
        raise SlmkitError(f"{folder.path}: transformers cannot load its tokenizer ({first_line(e)})") from None
    return lambda text: hf(text, add_special_tokens=False)["input_ids"]


def require(name: str, result: dict, artifact: str) -> None:
    if result["passed"]:
        return
    if name in ("tokenizer_parity", "tokenizer_transformers"):
        which = "llama.cpp's" if name == "tokenizer_parity" else "transformers'"
        raise SlmkitError(f"{artifact}: {which} tokenization differs from slmkit's on {result['mismatches']}/"
                          f"{result['texts']} texts (first: {result['first_mismatch']!r})")
    if name == "onnx_checker":
        raise SlmkitError(f"{artifact}: onnx.checker failed: {result['error']}")
    if name == "finite_logits":
        raise SlmkitError(f"{artifact}: its logits are not finite (NaN or infinity) on {result['bad_texts']} of "
                          f"{result['texts']} texts")
    if name == "cache_consistency":
        kl = f", KL {result['max_kl']:.2g}{'' if result.get('same_top1', True) else ', another top-1 token'}" \
            if "max_kl" in result else ""
        raise SlmkitError(f"{artifact}: decoding with the KV cache differs from a full forward pass by "
                          f"{result['max_abs_diff']:.5f}{kl}")
    raise SlmkitError(f"{artifact}: logits differ from the fp16 reference by {result['max_abs_diff']:.4f} "
                      f"(limit {result['limit']:.4f})")


def finite_logits(runtime: Runtime, texts: list[str]) -> dict:
    """Every logit of a few texts is finite: a quantization that broke the weights shows here."""
    bad = sum(not np.isfinite(runtime.score(runtime.tokenize(t)[: runtime.n_ctx])).all() for t in texts)
    return {"texts": len(texts), "bad_texts": int(bad), "passed": bad == 0}


def onnx_checker(path) -> dict:
    error = checker_error(path, full_check=True)
    return {"passed": True} if error is None else {"passed": False, "error": error}


CACHE_KL_QUANTIZED = 2e-3  # nats; dynamic int8 quantization measured <= 2e-4, a broken cache far above


def cache_consistency(runtime: Runtime, texts: list[str], quantized: bool = False) -> dict:
    """Prefill all but the last token, decode the last with the cache: equals one full forward pass.

    Float models: logits within 1e-3. Dynamically quantized activations take their scale from the whole
    input, so a correct cache moves a quantized model's logits about as far as quantization itself does
    (the demo's int8 ONNX: up to 0.30 against a full pass, and 0.38 for the full pass against fp16); there
    the cached next-token distribution must equal the full pass's: a KL below ``CACHE_KL_QUANTIZED``
    (measured noise up to 2e-4; a cache that drops or misplaces the past changes the distribution itself,
    KL > 0.1). The top-1 token is reported, not required: a model with near-tied logits (random weights)
    flips it on noise alone (KL 3e-5 on this project's CPU).
    """
    from slmkit.metrics import kl_divergence, log_softmax

    max_diff, max_kl, same_top1 = 0.0, 0.0, True
    for text in texts:
        ids = runtime.tokenize(text)[: runtime.n_ctx]
        full = runtime.score(ids)[-1]
        with runtime._lock:
            runtime._reset()
            runtime._eval(ids[:-1])
            last = runtime._eval(ids[-1:])[-1]
        max_diff = max(max_diff, float(np.abs(last - full).max()))
        max_kl = max(max_kl, float(kl_divergence(log_softmax(full), log_softmax(last))))
        same_top1 = same_top1 and int(np.argmax(last)) == int(np.argmax(full))
    if quantized:
        return {"texts": len(texts), "max_abs_diff": max_diff, "max_kl": max_kl, "same_top1": same_top1,
                "kl_limit": CACHE_KL_QUANTIZED, "passed": max_kl <= CACHE_KL_QUANTIZED}
    return {"texts": len(texts), "max_abs_diff": max_diff, "max_kl": max_kl, "limit": 1e-3, "passed": max_diff <= 1e-3}
