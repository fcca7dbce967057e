"""The open-world demo data: seeded, unseen evaluation words, controls that hold, measured rewards."""
import json
from collections import Counter

import pytest

from slmkit.demo import dataset
from slmkit.demo.dataset import EVAL_FILES, Example, examples, make_output, Plan, pieces as pieces_of
from slmkit.demo.intents import freeform, lexicon_heldout
from slmkit.demo.words import (ARTIFACTS, OFF_TOPIC, QUALITIES, SEARCH_SUFFIXES, SEARCH_SUFFIXES_MORE, STYLES, TAG_EXTRAS,
                               TAG_EXTRAS_MORE, TIMES, content_words, excluded_words)
from slmkit.model_folder import DEMO_MODEL
from slmkit.prompts import LENGTHS, RELEVANCE, TASKS, follows_format, length_bucket, relevance_bucket


def test_freeform_set_is_large_hand_written_and_covers_every_task():
    items = freeform()
    assert len(items) >= 150 and len(set(items)) == len(items)
    per_task = Counter(e.task for e in examples("eval", 10_000))
    assert set(per_task) == set(TASKS) and min(per_task.values()) >= 50 * 9
    assert all(2 <= len(i.split()) <= 8 for i in items)


def test_no_evaluation_word_in_any_word_pool_or_scaffold():
    """Structural half of the 'unseen words' guarantee: nothing the generator draws from holds one."""
    from slmkit.demo.words import pools as word_pools

    pools = word_pools()
    banned = excluded_words()
    assert len(banned) > 300
    for group in (pools.nouns, pools.adjectives, pools.verbs, pools.gerunds, pools.rare, ARTIFACTS, STYLES, QUALITIES, TIMES,
                  SEARCH_SUFFIXES, TAG_EXTRAS, SEARCH_SUFFIXES_MORE, TAG_EXTRAS_MORE, *OFF_TOPIC.values()):
        hits = {w for phrase in group for w in content_words(phrase)} & banned
        assert not hits, sorted(hits)[:5]


def test_the_shipped_model_was_trained_on_data_without_evaluation_words():
    """The other half: the training run checked every training text and recorded the result."""
    log = json.loads((DEMO_MODEL / "train_log.json").read_text())
    init = log.get("init") or {}  # a fine-tune's start: its own log recorded its check (v15's start, v11: 0)
    assert log["data"]["eval_words_in_training_data"] == 0 and init.get("eval_words_in_training_data") in (0, None)
    assert log["examples"] + (init.get("examples") or 0) >= 100_000


def test_training_data_check_refuses_an_evaluation_word():
    from slmkit.demo.train import check_unseen
    from slmkit.errors import SlmkitError

    ok = Example("still harbor", "t2i", "short", "high", "a still harbor, moored boats")
    check_unseen([ok])
    word = sorted(excluded_words())[0]
    with pytest.raises(SlmkitError, match="evaluation word"):
        check_unseen([ok, Example("still harbor", "t2i", "short", "high", f"a still harbor, {word}")])


def test_shipped_eval_files_follow_their_controls():
    for split in EVAL_FILES:
        rows = examples(split, 10_000)
        assert all(follows_format(e.task, e.output) for e in rows), split
        assert all(length_bucket(e.output) == e.length for e in rows), split
        # the generator's output was measured; most land in the requested bucket
        agree = sum(relevance_bucket(e.reward) == e.relevance for e in rows) / len(rows)
        assert agree > 0.8, (split, agree)
        first = rows[:9]
        assert {(e.length, e.relevance) for e in first} == {(ln, r) for ln in LENGTHS for r in RELEVANCE}


def test_lexicon_split_is_the_old_held_out_set():
    held = set(lexicon_heldout())
    assert len(held) > 1000 and {e.intent for e in examples("lexicon", 10_000)} <= held


def test_examples_are_seeded_samples():
    assert examples("eval", 50, seed=7) == examples("eval", 50, seed=7)
    assert examples("eval", 50, seed=7) != examples("eval", 50, seed=8)


@pytest.mark.parametrize("task", list(TASKS))
def test_outputs_copy_the_intent_and_never_repeat_a_piece(task):
    import random

    rng = random.Random(0)
    near, far = ["moored boats", "brine", "gull", "tide pool"], ["ledger", "tax form", "spreadsheet"]
    for length in LENGTHS:
        for _ in range(30):
            out = make_output(rng, "still harbor", task, length, Plan("full", 0.9), near, far)
            assert follows_format(task, out) and length_bucket(out) == length
            assert "harbor" in out
            if task == "t2i":  # the subject as written: no article to agree with an unseen word or a plural
                assert out.startswith("still harbor, "), out
            pieces = pieces_of(out)
            assert len(pieces) == len(set(pieces)), out
            # the intent once, as written, and no later piece copying it again (copies garbled under the
            # repetition rule and looped without it)
            assert pieces[0] == "still harbor" and not any("harbor" in p for p in pieces[1:]), out


def test_descriptors_are_drawn_near_the_words_the_model_can_know():
    known = frozenset({"wool", "scarf", "harbor", "sticker"})
    assert dataset.descriptor_anchor("Zenloria wool scarf", known) == "wool scarf"
    assert dataset.descriptor_anchor("a velkorin sticker for my harbor", known) == "a sticker for my harbor"
    assert dataset.descriptor_anchor("how to trim a velkorin", known) == ""  # only unknown words: generic ones


def test_an_intent_of_unknown_words_gets_generic_descriptors():
    import random

    import numpy as np

    class Fake:
        def __call__(self, texts):
            return np.array([[1.0, 0.0] if "harbor" in t else [0.0, 1.0] for t in texts], np.float32)

    bank = dataset.Bank([f"boat {i}" for i in range(100)] + [f"ledger {i}" for i in range(100)],
                        np.array(100 * [[1.0, 0.0]] + 100 * [[0.0, 1.0]], np.float32), {}, {}, {},
                        frozenset({"harbor"}))
    near, far = dataset._neighbours(bank, ["still harbor", "velkorin"], Fake(), random.Random(0))
    assert near[0] and all(p.startswith("boat") for p in near[0]) and all(p.startswith("ledger") for p in far[0])
    assert near[1] == []
    rng = random.Random(0)
    for task in TASKS:  # nothing near: every on-topic descriptor is one that fits any subject
        for _ in range(20):
            out = make_output(rng, "velkorin", task, "medium", Plan("full", 1.0), near[1], far[1])
            assert follows_format(task, out), out
            pieces = pieces_of(out)[1:]
            fits_any = {*dataset.GENERIC[task], *(f"{s} style" for s in dataset.STYLES if task == "t2i")}
            assert set(pieces) <= fits_any, out


@pytest.mark.parametrize("task", ["search", "recommend"])
def test_a_long_output_of_unknown_words_leaves_pieces_to_spare(task):
    """Generator 11: a long list of pieces that fit any subject used at most two thirds of them, so a model
    that writes one always has a fitting next piece the no-repeat rule allows. With generator 10's 18 search
    pieces such lists held all 18 and came up short, and v10 ended long searches with a dangling " |"."""
    import random

    rng = random.Random(0)
    for generator, spare in ((10, False), (11, True)):
        pool = dataset.generic(generator)[task]
        used = []
        for _ in range(40):
            out = make_output(rng, "velkorin", task, "long", Plan("full", 1.0), [], ["ledger"], {task: pool})
            pieces = pieces_of(out)[1:]
            assert follows_format(task, out) and set(pieces) <= set(pool) and length_bucket(out) == "long", out
            used.append(len(pieces))
        assert (max(used) <= 2 * len(pool) / 3) == spare, (generator, max(used), len(pool))
    assert dataset.generic(9) == dataset.generic(10) == dataset.GENERIC  # the older generators' data stands


def test_generator_15_draws_off_topic_pieces_from_a_short_list_far_from_the_intent(monkeypatch):
    """Off-topic pieces from thousands of bank phrases were each too unlikely for min-p sampling to keep, so
    models asked for mid relevance added none; generator 15 draws them from ``OFF_TOPIC``, per task."""
    import random

    import numpy as np

    assert all(len(v) >= 2 * dataset.OFF_TOPIC_MIN for v in OFF_TOPIC.values())
    near_tax = {"tax form", "tax deadline", "tax refund", "income tax", "property tax", "tax software"}

    def embed(texts):
        axis = [0 if "tax" in t else 1 if "harbor" in t else 2 for t in texts]
        return np.eye(3, dtype=np.float32)[axis]

    intents = ["tax forms for my shop", "still harbor"]
    bank_far = [[f"ledger {i}" for i in range(40)], [f"boat {i}" for i in range(40)]]
    short = dataset.off_topic_pieces(embed(intents), bank_far, embed)
    for task, pieces in OFF_TOPIC.items():
        assert short[1][task] == list(pieces)  # all far from the harbor
        assert short[0][task] == [p for p in pieces if p not in near_tax]  # none about tax for the tax intent
    monkeypatch.setattr(dataset, "OFF_TOPIC", dict(OFF_TOPIC, t2i=("tax form", "stapler")))
    short = dataset.off_topic_pieces(embed(intents), bank_far, embed)  # too few far ones: topped up from the bank
    assert short[0]["t2i"] == ["stapler"] + bank_far[0][:dataset.OFF_TOPIC_MIN - 1]
    rng = random.Random(0)
    out = make_output(rng, "still harbor", "recommend", "long", Plan("full", 0.0), [], short[1]["recommend"])
    assert set(pieces_of(out)[1:]) <= set(OFF_TOPIC["recommend"]), out


def test_generator_15_leaves_out_high_outputs_carrying_an_off_topic_piece():
    rows = [Example("still harbor", "search", "short", rel, out, r) for rel, out, r in (
        ("high", "still harbor | tax deadline", 0.7), ("high", "still harbor | tax deadline guide", 0.7),
        ("mid", "still harbor | tax deadline", 0.6), ("high", "still harbor | tax deadlines", 0.7),
        ("high", "still harbor | guide", 0.9))]
    assert [dataset.carries_off_topic(e) for e in rows] == [True, True, True, False, False]
    assert dataset.without_off_topic_highs(rows) == rows[2:]
    assert dataset.intents_for(80_000, 14) == 40_000 and dataset.intents_for(80_000, 15) == 44_000


@pytest.mark.parametrize("sea_cosine, near", [(0.6, ["boat", "sea glass"]), (0.3, ["boat"])])
def test_on_topic_descriptors_are_only_the_clearly_near_ones(sea_cosine, near):
    import random

    import numpy as np

    def embed(texts):
        sea = [sea_cosine, (1 - sea_cosine ** 2) ** 0.5]
        return np.array([[1.0, 0.0] if "harbor" in t or t == "boat" else sea if "sea" in t else [0.0, 1.0]
                         for t in texts], np.float32)

    phrases = ["boat", "sea glass", "ledger"]  # a bank smaller than the candidates ranked per intent
    bank = dataset.Bank(phrases, embed(phrases), {}, {}, {}, frozenset({"harbor"}))
    assert dataset._neighbours(bank, ["still harbor"], embed, random.Random(0))[0] == [near]


def test_relevance_label_is_the_bucket_of_the_measured_reward():
    assert relevance_bucket(0.95) == "high" and relevance_bucket(0.5) == "mid" and relevance_bucket(0.1) == "low"
    assert relevance_bucket(-0.2) == "low" and relevance_bucket(1.0) == "high"


def test_labelling_uses_the_scorer():
    class Fake:
        """Embeds a text as 1 on axis 0 when it holds 'harbor', else on axis 1."""

        def __call__(self, texts):
            import numpy as np

            return np.array([[1.0, 0.0] if "harbor" in t else [0.0, 1.0] for t in texts], np.float32)

    rows = dataset.label(Fake(), [("still harbor", "t2i", "short", "a still harbor, boats"),
                                  ("still harbor", "t2i", "short", "a ledger, tax form, sums")])
    assert [r.relevance for r in rows] == ["high", "low"] and rows[0].reward == 1.0 and rows[1].reward == 0.0


def _typed_form(intent: str) -> bool:
    """Whether an intent is typed as people type: a capital, a digit, a non-ASCII letter or punctuation."""
    return any(c.isupper() or c.isdigit() or not c.isascii() or c in "?!&'\".-$%" for c in intent)


def test_typed_set_is_hand_written_in_every_typed_form_and_task():
    from slmkit.demo.intents import LOANWORDS
    from slmkit.demo.words import typed_intents

    rows = typed_intents()
    assert len(rows) >= 45 and {t for t, _ in rows} == set(TASKS) and len({i for _, i in rows}) == len(rows)
    intents = [i for _, i in rows]
    assert all(_typed_form(i) and "," not in i and "|" not in i for i in intents)
    forms = {"capital": any(c.isupper() for c in " ".join(intents)), "digit": any(c.isdigit() for c in " ".join(intents)),
             "accent": any(not c.isascii() for c in " ".join(intents)), "question": any("?" in i for i in intents),
             "ampersand": any("&" in i for i in intents), "possessive": any("'s" in i for i in intents)}
    assert all(forms.values()), forms
    # accent copying is measured on words the generator's loanwords do not hold
    typed_words = {w.lower().strip("?!.\"'") for i in intents for w in i.split()}
    assert not typed_words & {w.lower() for w in LOANWORDS}


def test_a_share_of_training_intents_is_typed_as_people_type():
    import random

    from slmkit.demo.intents import TYPED_SHARE, open_world_intents, typed
    from slmkit.demo.words import pools

    intents = open_world_intents(pools(), 3000, seed=5, generator=dataset.GENERATOR_VERSION)
    share = sum(map(_typed_form, intents)) / len(intents)
    assert TYPED_SHARE - 0.08 < share < TYPED_SHARE + 0.12, share  # a few lower-case drawn shapes carry digits
    # an intent's words never break the output format, and evaluation words stay out after typing too
    assert not any("," in i or "|" in i for i in intents)
    banned = excluded_words()
    assert not any(w in banned for i in intents for w in content_words(i))
    rng = random.Random(0)
    forms = [typed(rng, "vintage lamp and wooden desk sticker") for _ in range(300)]
    assert any(any(w.isupper() and len(w) > 1 for w in f.split()) for f in forms) and any(not f.isascii() for f in forms)
    assert any("&" in f for f in forms) and any(any(c.isdigit() for c in f) for f in forms)
    assert all(f.lower().replace("'s", "").strip("?!") != "" for f in forms)


def test_training_intents_use_the_determiners_and_joints_people_type():
    # generators up to 9 wrote "a"/"an" only, and v9 copied "cabin in the snowy mountains" as "cabin in theory ..."
    from slmkit.demo.intents import open_world_intents, plural
    from slmkit.demo.words import pools

    intents = [i.lower() for i in open_world_intents(pools(), 3000, seed=5, generator=10)]
    def share(word: str) -> float:
        return sum(f" {word} " in f" {i} " for i in intents) / len(intents)
    assert share("the") > 0.12 and share("my") > 0.01 and share("a") > 0.05
    assert share("by") > 0.005 and share("over") > 0.005 and share("through") > 0.005
    assert [plural(w) for w in ("mountain", "box", "city", "day", "fisherman", "human", "leaf")] == [
        "mountains", "boxes", "cities", "days", "fishermen", "humans", "leaves"]


def test_generators_12_and_13_put_everyday_nouns_and_descriptor_adjectives_in_intents():
    # v11 saw "mountain" in 9 of 60,000 intents and "snowy" almost only in its outputs' learned pairs, and
    # sampled "cabin in the snowy mountains" as "cabin in the snowy avenues"
    from slmkit.demo.intents import DESCRIPTOR_SHARE, LOANWORDS, open_world_intents
    from slmkit.demo.words import DESCRIPTOR_ADJECTIVES, pools

    everyday = ("mountain", "cabin", "harbor")
    intents = [i.lower() for i in open_world_intents(pools(), 3000, seed=5, generator=12, everyday=everyday)]
    words = Counter(w.strip("?!") for i in intents for w in i.split())
    assert sum(words[w] + words[w + "s"] for w in everyday) > 0.15 * len(intents)
    assert words["mountains"] > 10 and not any(words[w + "ses"] for w in everyday)  # never plural twice
    described = sum(any(w in DESCRIPTOR_ADJECTIVES for w in i.split()) for i in intents) / len(intents)
    assert described > DESCRIPTOR_SHARE / 2, described
    banned = excluded_words()
    assert not any(w in banned for i in intents for w in content_words(i))
    # every accented letter of ACCENTS_WIDE can turn up, on any word (v11 never saw "ã": "Sëo Paulo")
    letters = {ch for i in open_world_intents(pools(), 20_000, seed=5, generator=12, everyday=everyday)
               for ch in i if not ch.isascii()}
    assert "ã" in letters and "õ" in letters and len(letters) > 40, sorted(letters)
    # generator 13 puts accents on any word less often (v12 wrote "üGLASSES"), names and loanwords as before
    def accented_words(generator: int) -> int:
        rows = open_world_intents(pools(), 20_000, seed=5, generator=generator, everyday=everyday)
        return sum(not w.isascii() and w[:1].islower() and w.strip("?!") not in LOANWORDS
                   for i in rows for w in i.split())
    assert accented_words(13) < 0.6 * accented_words(12)
    # the older generators draw exactly as they did, and 12 needs its nouns
    old = open_world_intents(pools(), 500, seed=5, generator=11)
    assert open_world_intents(pools(), 500, seed=5, generator=11, everyday=everyday) == old
    with pytest.raises(ValueError, match="everyday"):
        open_world_intents(pools(), 5, seed=5, generator=12)


def test_generator_14_types_prices_percentages_abbreviations_and_quotes_but_not_the_evaluations_own():
    # v13 + sparse embedding updates copied "$300", "50% OFF", "Dr. Martens" and '"Employee of the Month"' at
    # p 0.00: no intent had ever held "$", "%", an abbreviation's "." or a quote
    import re

    from slmkit.demo.intents import ABBREVIATIONS, open_world_intents
    from slmkit.demo.words import pools, typed_intents

    everyday = ("mountain", "cabin", "harbor")
    rows = open_world_intents(pools(), 3000, seed=5, generator=14, everyday=everyday)
    share = lambda pattern: sum(bool(re.search(pattern, r)) for r in rows) / len(rows)  # noqa: E731
    for pattern in (r"\$\d+\b", r"\b\d+% ?", r"\b[A-Za-z]+\. |\b[A-Za-z]+\.$", r'"[^"]+"'):
        assert 0.01 < share(pattern) < 0.06, pattern
    assert all(r.count('"') in (0, 2) for r in rows) and not any("," in r or "|" in r for r in rows)
    # the evaluation's own abbreviations and percentage stay its own
    typed_words = {w for _, i in typed_intents() for w in i.split()}
    assert {"Dr.", "Mt.", "St.", "vs."} <= typed_words and not typed_words & set(ABBREVIATIONS)
    assert not any(re.search(r"\b50%", r) or w in r.split() for r in rows for w in ("Dr.", "Mt.", "St.", "vs."))
    # generator 13's intents hold none of them
    assert not any(re.search(r'[$%"]', r) for r in open_world_intents(pools(), 3000, seed=5, generator=13,
                                                                      everyday=everyday))


def test_everyday_set_is_hand_written_lower_case_requests_in_every_task():
    from slmkit.demo.words import everyday_intents

    rows = everyday_intents()
    assert len(rows) >= 45 and {t for t, _ in rows} == set(TASKS)
    assert all(i == i.lower() and i.isascii() and 2 <= len(i.split()) <= 8 for _, i in rows)
    assert sum(" the " in f" {i} " for _, i in rows) >= 15 and len({i for _, i in rows}) == len(rows)
