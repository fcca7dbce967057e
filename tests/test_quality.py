import math

import numpy as np

from slmkit.benchmarks.quality import perplexity, summarize_drift, token_drift


def test_identical_logits_have_no_drift():
    x = np.random.default_rng(0).standard_normal((5, 11))
    s = summarize_drift([token_drift(x, x + 3.0)])  # a constant shift changes nothing
    assert s["mean_kl"] < 1e-12 and s["same_top1"] == 1.0 and s["rms_delta_p"] < 1e-12 and s["tokens"] == 5


def test_kl_matches_a_hand_computed_value():
    p, q = np.array([[0.7, 0.2, 0.1]]), np.array([[0.5, 0.3, 0.2]])
    d = token_drift(np.log(p), np.log(q))
    assert math.isclose(d["kl"][0], float((p * np.log(p / q)).sum()), rel_tol=1e-9)
    assert bool(d["same_top1"][0]) and math.isclose(d["delta_p"][0], -0.2)
    flipped = token_drift(np.log(p), np.log(q[:, ::-1]))
    assert not flipped["same_top1"][0]


def test_perplexity_of_uniform_model_is_vocab_size():
    assert math.isclose(perplexity([np.zeros((4, 7))], [[1, 2, 3, 4]]), 7.0)
