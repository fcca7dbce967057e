"""Quality metrics on logits, shared by the runtimes, the converters' checks and the benchmarks.

Quality drift of one model's logits against the reference's, with llama.cpp's definitions.

As in ``llama-perplexity --kl-divergence``: per token, KL(P_ref || P_test) over the full vocabulary;
"same top p" is the share of tokens whose argmax agrees; Δp is the change in the probability of the
actual next token. Only positions that have a next token count. Perplexity is over the tokens actually
in the text.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def log_softmax(x: np.ndarray) -> np.ndarray:
    """log-probabilities over the last axis, in float64."""
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def kl_divergence(lp_ref: np.ndarray, lp_test: np.ndarray) -> np.ndarray:
    """KL(P_ref || P_test) over the last axis of two log-probability arrays (rounding below 0 clamped)."""
    return np.maximum((np.exp(lp_ref) * (lp_ref - lp_test)).sum(axis=-1), 0.0)


def token_drift(ref_logits: np.ndarray, test_logits: np.ndarray, ids: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-position KL, top-1 agreement and Δp for two [T, V] logit arrays of the same tokens ``ids``,
    over the T - 1 positions that have a next token (the last row predicts nothing in the text). Δp is
    the change in the probability of the actual next token, as llama-perplexity reports it."""
    if ref_logits.shape != test_logits.shape:
        raise ValueError(f"logit shapes differ: {ref_logits.shape} vs {test_logits.shape}")
    if len(ids) != len(ref_logits):
        raise ValueError(f"{len(ids)} token ids for {len(ref_logits)} rows of logits")
    lp_ref, lp_test = log_softmax(ref_logits[:-1]), log_softmax(test_logits[:-1])
    p_ref = np.exp(lp_ref)
    rows, nxt = np.arange(len(lp_ref)), np.asarray(ids[1:])
    return {"kl": kl_divergence(lp_ref, lp_test), "same_top1": lp_ref.argmax(axis=-1) == lp_test.argmax(axis=-1),
            "delta_p": np.exp(lp_test[rows, nxt]) - p_ref[rows, nxt]}


def summarize_drift(per_token: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Mean / median / 99th percentile / max KL, same-top-1 rate and RMS Δp over many sequences."""
    kl = np.concatenate([d["kl"] for d in per_token])
    same = np.concatenate([d["same_top1"] for d in per_token])
    dp = np.concatenate([d["delta_p"] for d in per_token])
    return {"tokens": int(kl.size), "mean_kl": float(kl.mean()), "median_kl": float(np.median(kl)),
            "p99_kl": float(np.percentile(kl, 99)), "max_kl": float(kl.max()),
            "same_top1": float(same.mean()), "rms_delta_p": float(math.sqrt((dp ** 2).mean()))}


def nll(logits: np.ndarray, ids: list[int]) -> float:
    """Negative log-likelihood of a sequence's tokens after the first, given [T, V] logits of the sequence."""
    lp = log_softmax(logits[:-1])
    return -float(lp[np.arange(len(ids) - 1), ids[1:]].sum())


def perplexity(logits: list[np.ndarray], ids: list[list[int]]) -> float:
    """exp of the mean negative log-likelihood of each sequence's tokens after the first."""
    total = sum(nll(lg, seq) for lg, seq in zip(logits, ids))
    return math.exp(total / sum(len(seq) - 1 for seq in ids))
