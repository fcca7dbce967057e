import pytest

from slmkit.errors import SlmkitError
from slmkit.prompts import CONTROL_TOKENS, build_prompt, follows_format, length_bucket, word_count


def test_build_prompt_uses_control_tokens():
    p = build_prompt("  cozy   cabin wallpaper ", "search", "short", "low")
    assert p == "<|task:search|><|len:short|><|rel:low|> cozy cabin wallpaper<|out|>"
    assert all(t in CONTROL_TOKENS for t in ("<|task:search|>", "<|len:short|>", "<|rel:low|>", "<|out|>"))


@pytest.mark.parametrize("kw,msg", [({"task": "poem"}, "unknown task 'poem'; valid: t2i, search, recommend"),
                                    ({"length": "huge"}, "unknown length 'huge'; valid: short, medium, long"),
                                    ({"relevance": "max"}, "unknown relevance 'max'; valid: high, mid, low")])
def test_build_prompt_rejects_unknown_controls_listing_valid_ones(kw, msg):
    with pytest.raises(SlmkitError, match=msg):
        build_prompt("holiday sale flyer", **kw)


def test_build_prompt_rejects_empty_and_injected_control_tokens():
    with pytest.raises(SlmkitError, match="empty intent"):
        build_prompt("   ")
    with pytest.raises(SlmkitError, match="control token"):
        build_prompt("sale <|out|> flyer")


@pytest.mark.parametrize("task,out,ok", [
    ("t2i", "a cozy cabin wallpaper, pine forest, watercolor style", True),
    ("t2i", "cozy cabin wallpaper, pine forest", True),
    ("t2i", "tags: cozy cabin wallpaper, pine forest", False),
    ("t2i", "cozy cabin wallpaper, , pine forest", False),
    ("t2i", "a cozy cabin wallpaper", False),
    ("t2i", "a cozy cabin | pine forest", False),
    ("search", "cozy cabin wallpaper | log cabin desktop background", True),
    ("search", "cozy cabin wallpaper", False),
    ("search", "cozy cabin, wallpaper | log cabin", False),
    ("search", "cozy cabin | | log", False),
    ("recommend", "tags: cabin, wallpaper, pine forest", True),
    ("recommend", "cabin, wallpaper", False),
    ("recommend", "tags: cabin", False),
    ("recommend", "tags: cabin | wallpaper, x", False),
    ("t2i", " a cozy cabin, pine", False),
])
def test_follows_format(task, out, ok):
    assert follows_format(task, out) is ok


def test_length_buckets_count_words_not_separators():
    assert word_count("tags: a, b c") == 3
    assert word_count("a b | c d") == 4
    assert length_bucket("one two three") == "short"
    assert length_bucket(" ".join(["w"] * 15)) == "medium"
    assert length_bucket(" ".join(["w"] * 30)) == "long"
    assert length_bucket(" ".join(["w"] * 60)) is None


def test_the_output_opens_with_a_space_that_output_text_drops():
    """The intent and the output each follow one space, so the intent's first word is the same tokens in
    the prompt and in a copy ("a vintage ...", "tags: vintage ...", "vintage ... | ...")."""
    from slmkit.demo.dataset import Example
    from slmkit.prompts import output_text

    e = Example("vintage red bicycle", "search", "short", "high", "vintage red bicycle | vintage bike")
    assert e.text == ("<|task:search|><|len:short|><|rel:high|> vintage red bicycle<|out|>"
                      " vintage red bicycle | vintage bike<|endoftext|>")
    assert output_text(" a vintage red bicycle, 8k") == "a vintage red bicycle, 8k"
    assert output_text("tags: x") == "tags: x" and output_text("  x") == " x"  # one space, no more


def test_copy_metrics_tell_a_garbled_copy_from_an_exact_one():
    from slmkit.demo.evaluate import carries_every_intent_word, carries_intent_word, repeats_a_piece

    intent = "astronaut birthday party"
    assert carries_every_intent_word(intent, "an astronaut birthday party, balloons, 8k")
    garbled = "an aastronaut birthday party, balloons"
    assert carries_intent_word(intent, garbled) and not carries_every_intent_word(intent, garbled)
    assert not carries_every_intent_word("the of", "the of")  # no content word: nothing to carry
    assert repeats_a_piece("tags: a, b, a") and not repeats_a_piece("a | b | a b")


def test_set_figures_tell_a_copy_as_typed_from_a_case_folded_or_broken_one():
    """The typed-intent figures, with a stand-in runtime that answers each intent in a known way."""
    import numpy as np

    from slmkit.demo.evaluate import set_figures
    from slmkit.demo.words import typed_intents

    class Answers:
        def __init__(self, answer):
            self.answer, self.seeds = answer, []

        def generate(self, prompt, n, seed, **kw):
            intent = prompt.split("|>")[-2].removesuffix("<|out").strip()
            self.seeds.append(seed)
            return [" " + self.answer(intent)] * n

    class Scorer:
        def embed(self, texts):
            return np.ones((len(texts), 4)) / 2.0  # every pair at cosine 1

    rows = typed_intents()
    exact = set_figures(Answers(lambda i: f"{i}, bokeh"), {"temperature": 0.7}, candidates=2, scorer=Scorer())
    assert exact["candidates"] == 2 * len(rows) and exact["copies_as_typed"] == 1.0
    assert exact["broken_characters"] == 0.0 and exact["relevance_high"] == 1.0
    folded = set_figures(Answers(lambda i: f"{i.lower()}, bokeh"), {}, candidates=1, scorer=Scorer())
    assert folded["copies_as_typed"] < 0.1 and folded["carries_every_intent_word"] == 1.0
    broken = set_figures(Answers(lambda i: f"{i[:-1]}\ufffd, bokeh, bokeh"), {}, candidates=1, scorer=Scorer())
    assert broken["broken_characters"] == 1.0 and broken["repeated_piece_rate"] == 1.0
    assert broken["copies_as_typed"] == 0.0 and len(broken["misses"]) == len(rows)
    # the everyday set is asked as written and with a capital first letter, each a set of its own
    for name in ("everyday", "everyday, capital first letter"):
        fig = set_figures(Answers(lambda i: f"{i}, bokeh"), {}, name, candidates=1, scorer=Scorer())
        assert fig["copies_as_typed"] == 1.0 and not fig["misses"] and fig["set"].startswith("everyday intents")
        intents = [s["intent"] for s in fig["samples"]]
        assert all(i[0].isupper() == (name != "everyday") for i in intents), intents[:3]


def test_copy_probabilities_read_the_intent_tokens_after_the_prompt():
    """Teacher-forced copy figures: the probability of each intent token sits one place before it in
    token_logprobs; the least sure token is named, and intents sort weakest first."""
    import numpy as np

    from slmkit.demo.evaluate import copy_probabilities
    from slmkit.prompts import SEP

    class Tok:
        def decode(self, ids):
            return "".join(chr(i) for i in ids)

    class CharModel:  # one token per character after the separator; p 0.9 each, 0.05 for "m", 0.01 for "g"
        tokenizer = Tok()

        def tokenize(self, text):
            head, _, tail = text.partition(SEP)
            return [1] * len(head) + [0] + [ord(c) for c in tail]

        def token_logprobs(self, ids):
            return np.log(np.array([{ord("m"): 0.05, ord("g"): 0.01}.get(t, 0.9) for t in ids[1:]]))

    fig = copy_probabilities(CharModel(), [("t2i", "snowy mountains"), ("search", "cozy cabin"),
                                           ("recommend", "cozy cabin")])
    assert [r["intent"] for r in fig["intents"]] == ["snowy mountains", "cozy cabin", "cozy cabin"]
    assert fig["intents"][0]["token"] == "m" and abs(fig["intents"][0]["least"] - 0.05) < 1e-9
    # recommend's output opens "tags: ", whose "g" is not the intent's: it is as sure as search's
    assert all(abs(r["least"] - 0.9) < 1e-9 for r in fig["intents"][1:]) and abs(fig["sure_share"] - 2 / 3) < 1e-9
