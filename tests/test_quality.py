"""Drift and perplexity against independent, loop-by-loop computations on non-uniform logits.

Caught by these tests (checked by breaking the code): Δp taken at the reference's top token instead of
the next token, the last row (which predicts nothing) counted in the drift, and an off-by-one in the
NLL's indexing (scoring ids[:-1] instead of ids[1:]).
"""
import math

import numpy as np
import pytest

from slmkit.metrics import nll, perplexity, summarize_drift, token_drift


def softmax(row: np.ndarray) -> np.ndarray:
    e = np.exp(row - row.max())
    return e / e.sum()


@pytest.fixture()
def texts():
    """Two texts of unequal length with random logits: (ids, reference logits, test logits)."""
    rng = np.random.default_rng(3)
    out = []
    for length in (7, 4):
        ids = rng.integers(0, 13, length).tolist()
        ref = rng.standard_normal((length, 13)) * 2
        out.append((ids, ref, ref + rng.standard_normal((length, 13)) * 1.5))
    return out


def test_drift_matches_a_position_by_position_computation(texts):
    kl, same, dp = [], [], []
    for ids, ref, test in texts:
        for t in range(len(ids) - 1):  # only positions with a next token
            p, q = softmax(ref[t]), softmax(test[t])
            kl.append(float((p * np.log(p / q)).sum()))
            same.append(p.argmax() == q.argmax())
            dp.append(q[ids[t + 1]] - p[ids[t + 1]])
    s = summarize_drift([token_drift(ref, test, ids) for ids, ref, test in texts])
    assert s["tokens"] == 6 + 3
    assert s["mean_kl"] == pytest.approx(np.mean(kl)) and s["max_kl"] == pytest.approx(max(kl))
    assert s["same_top1"] == pytest.approx(np.mean(same)) and 0 < s["same_top1"] < 1
    assert s["rms_delta_p"] == pytest.approx(math.sqrt(np.mean(np.square(dp))))


def test_identical_logits_have_no_drift(texts):
    ids, ref, _ = texts[0]
    s = summarize_drift([token_drift(ref, ref + 3.0, ids)])  # a constant shift changes nothing
    assert s["mean_kl"] < 1e-12 and s["same_top1"] == 1.0 and s["rms_delta_p"] < 1e-12


def test_perplexity_matches_a_token_by_token_computation(texts):
    total, count = 0.0, 0
    for ids, ref, _ in texts:
        for t in range(len(ids) - 1):
            total -= math.log(softmax(ref[t])[ids[t + 1]])
            count += 1
    assert nll(texts[0][1], texts[0][0]) == pytest.approx(
        -sum(math.log(softmax(texts[0][1][t])[texts[0][0][t + 1]]) for t in range(6)))
    assert perplexity([r for _, r, _ in texts], [i for i, _, _ in texts]) == pytest.approx(math.exp(total / count))
    assert math.isclose(perplexity([np.zeros((4, 7))], [[1, 2, 3, 4]]), 7.0)  # uniform: the vocabulary size


def test_mismatched_inputs_are_refused(texts):
    ids, ref, test = texts[0]
    with pytest.raises(ValueError, match="shapes differ"):
        token_drift(ref, test[:-1], ids)
    with pytest.raises(ValueError, match="token ids"):
        token_drift(ref, test, ids[:-1])
