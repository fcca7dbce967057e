from collections import Counter

from slmkit.demo.dataset import examples, intents, parse_intent, relevance
from slmkit.prompts import follows_format, length_bucket


def test_generator_is_deterministic():
    assert examples("train", 300) == examples("train", 300)
    assert examples("eval", 100) == examples("eval", 100)
    assert examples("train", 50, seed=7) != examples("train", 50, seed=8)


def test_eval_intents_are_unseen_in_training():
    train, held = set(intents("train")), set(intents("eval"))
    assert not train & held
    assert len(held) > 1000 and len(train) > 30_000
    seen = {e.intent for e in examples("train", 5000)}
    assert not seen & {i.text for i in held}
    assert {e.intent for e in examples("eval", 200)} <= {i.text for i in held}


def test_every_example_follows_its_controls():
    exs = examples("train", 3000)
    assert all(follows_format(e.task, e.output) for e in exs)
    assert all(length_bucket(e.output) == e.length for e in exs)
    assert all(e.text.startswith(e.prompt) and e.text.endswith("<|endoftext|>") for e in exs)
    counts = Counter(e.task for e in exs)
    assert min(counts.values()) > 800  # all three tasks are well represented


def test_relevance_tracks_the_desired_reward_bucket():
    exs = examples("train", 3000)
    mean = {r: sum(relevance(e.intent, e.output) for e in exs if e.relevance == r)
            / sum(e.relevance == r for e in exs) for r in ("high", "mid", "low")}
    assert mean["high"] > 0.9 > mean["mid"] > 0.4 > mean["low"]


def test_outputs_are_diverse_not_memorisable():
    exs = examples("train", 5000)
    assert len({e.output for e in exs}) > 4900
    words = {w for e in exs for w in e.output.replace(",", " ").split()}
    assert len(words) > 800


def test_parse_intent_and_free_form_relevance():
    assert parse_intent("cozy cabin wallpaper").subject == "cabin"
    assert parse_intent("a thing I typed") is None
    assert relevance("a thing I typed", "a b, c") == 0.0
