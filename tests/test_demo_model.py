"""The shipped demo model: present, small, fp16, loadable offline, and serving intents people write."""
import json

import pytest

from slmkit.demo.evaluate import evaluate
from slmkit.prompts import DECODING
from slmkit.model_folder import DEMO_MODEL, open_model_folder
from slmkit.runtimes.reference import ReferenceRuntime


def test_demo_model_ships_as_fp16_package_data_under_50_mb():
    f = open_model_folder()
    assert f.name == "slmkit-demo" and f.dtypes == {"F16": len(f.tensors)}
    assert f.weights.stat().st_size <= 50 * 10**6
    for name in ("tokenizer.json", "tokenizer_config.json", "MODEL_CARD.md", "train_log.json"):
        assert (DEMO_MODEL / name).is_file(), name
    log = json.loads((DEMO_MODEL / "train_log.json").read_text())
    assert log["examples"] >= 100_000 and log["intents"] >= 50_000
    # the recipe fits the 2-hour CPU budget at the throughput measured on this machine (1,320 tok/s)
    assert log["tokens_seen"] / 1320 <= 2 * 3600


@pytest.fixture(scope="module")
def figures():
    """Sampled generations with the CLI's default sampling, two candidates per example, on both splits."""
    with ReferenceRuntime(threads=2) as ref:
        return {split: evaluate(ref, 108, split=split, decoding=DECODING, candidates=2) for split in ("eval", "lexicon")}


def test_demo_model_serves_free_form_intents_it_never_saw_words_of(figures):
    free, lexicon = figures["eval"], figures["lexicon"]
    assert free["format_rate"]["all"] >= 0.9 and free["length_rate"]["all"] >= 0.6
    # copies words it never saw: high relevance requested -> the intent's own words in the output
    assert free["carries_intent_word_high"] >= 0.95
    # as relevant as on intents made of words it was trained on (the bar: within 10%)
    assert free["relevance"]["high"] >= 0.9 * lexicon["relevance"]["high"]
    assert free["repeated_piece_rate"] <= 0.05


def test_the_desired_reward_control_orders_relevance(figures):
    for split, r in figures.items():
        rel = r["relevance"]
        # clear margins (the full evaluation, 540 x 4 outputs: 0.26 and 0.13 free-form); a smaller sample here
        assert rel["high"] > rel["mid"] + 0.08 and rel["mid"] > rel["low"] + 0.05, (split, rel)
