"""The shared sampler draws from the distribution it promises (temperature, top-k, top-p, min-p).

Checked against an independent computation over the full sorted vocabulary, on a vocabulary over
SORT_CANDIDATES so the partial-sort path runs. Checked by breaking it: applying min-p before the
temperature, keeping one token too few in the nucleus, or dropping the temperature each fail here.
"""
import numpy as np
import pytest

from slmkit.errors import SlmkitError
from slmkit.runtimes.sampling import SORT_CANDIDATES, Sampling, sample_token

VOCAB = 3000
DRAWS = 20_000


def intended(logits: np.ndarray, temperature: float, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0
             ) -> np.ndarray:
    """The promised distribution, computed the slow and obvious way."""
    p = np.exp((logits - logits.max()) / temperature)
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    if top_k:  # the nucleus is taken of the top-k tokens' mass, as transformers does
        p[order[top_k:]] = 0.0
        p /= p.sum()
    keep = np.zeros(len(p), bool)
    mass = 0.0
    for i in order:
        keep[i] = p[i] > 0
        mass += p[i]
        if mass >= top_p:
            break
    kept = p * keep
    kept[kept < min_p * p.max()] = 0.0
    return kept / kept.sum()


@pytest.fixture(scope="module")
def logits() -> np.ndarray:
    rng = np.random.default_rng(7)
    return (rng.standard_normal(VOCAB) * 2.5).astype(np.float32)  # a long tail past SORT_CANDIDATES


@pytest.mark.parametrize("settings", [
    {"temperature": 0.8},
    {"temperature": 1.3, "min_p": 0.05},                 # the unsorted path with min-p
    {"temperature": 0.7, "top_p": 0.95, "min_p": 0.1},    # the CLI's defaults
    {"temperature": 1.0, "top_p": 0.9},
    {"temperature": 1.5, "top_p": 0.85},                 # sorted candidates hold 0.90 of the mass, the nucleus 0.85
    {"temperature": 1.0, "top_k": 40},
    {"temperature": 2.0, "top_p": 0.999},                # the nucleus reaches past the sorted candidates
])
def test_sampled_frequencies_match_the_intended_distribution(logits, settings):
    assert VOCAB > SORT_CANDIDATES
    want = intended(logits.astype(np.float64), **settings)
    rng = np.random.default_rng(0)
    draws = np.bincount([sample_token(logits, rng, **settings) for _ in range(DRAWS)], minlength=VOCAB)
    freq = draws / DRAWS
    assert not (draws > 0)[want == 0].any(), "drew a token outside the promised support"
    # every token the distribution gives 0.2% or more shows up
    assert (draws > 0)[want >= 0.002].all()
    # the mass of each band of the support by rank (the head, ..., the tail the cut-offs decide) is
    # within 4 standard errors of the promised mass
    ranked = np.argsort(-want, kind="stable")[: int((want > 0).sum())]
    for band in np.array_split(ranked, min(5, len(ranked))):
        m, f = want[band].sum(), freq[band].sum()
        assert abs(f - m) < 4 * np.sqrt(m * (1 - m) / DRAWS) + 1e-9, (len(ranked), m, f)


def test_the_nucleus_keeps_exactly_the_tokens_that_reach_top_p():
    logits = np.full(VOCAB, -30.0)
    logits[:4] = np.log([0.4, 0.3, 0.15, 0.1])  # the rest: 0.05 over the vocabulary's other tokens
    logits[4:] = np.log(0.05 / (VOCAB - 4))
    rng = np.random.default_rng(0)
    assert {sample_token(logits, rng, 1.0, top_p=0.8) for _ in range(400)} == {0, 1, 2}  # 0.7 < 0.8 <= 0.85
    assert {sample_token(logits, rng, 1.0, top_p=0.7) for _ in range(400)} == {0, 1}
    assert {sample_token(logits, rng, 1.0, top_k=3, top_p=0.75) for _ in range(400)} == {0, 1}  # of top-3 mass


def test_min_p_cuts_relative_to_the_most_likely_token():
    logits = np.log(np.array([0.5, 0.3, 0.1, 0.06, 0.04]))
    rng = np.random.default_rng(0)
    drawn = {sample_token(logits, rng, 1.0, min_p=0.15) for _ in range(500)}
    assert drawn == {0, 1, 2}  # 0.06 < 0.15 * 0.5 and 0.04 too; 0.1 >= 0.075
    assert {sample_token(logits, rng, 1.0, min_p=0.7) for _ in range(100)} == {0}


@pytest.mark.parametrize("args, message", [
    ((1e-310, 0, 1.0, 0.0), "temperature"),
    ((-0.5, 0, 1.0, 0.0), "temperature"),
    ((float("nan"), 0, 1.0, 0.0), "temperature"),
    ((0.7, -1, 1.0, 0.0), "top_k"),
    ((0.7, 0, 0.0, 0.0), "top_p"),
    ((0.7, 0, 1.5, 0.0), "top_p"),
    ((0.7, 0, 1.0, 1.0), "min_p"),
    ((0.7, 0, 1.0, -0.1), "min_p"),
    ((0.7, 0, 1.0, 0.0, 2.5), "presence_penalty"),
    ((0.7, 0, 1.0, 0.0, 0.0, -3.0), "frequency_penalty"),
    ((0.7, 0, 1.0, 0.0, 0.0, 0.0, 17), "no_repeat_ngram"),
    ((0.7, 2.5, 1.0, 0.0), "top_k"),
])
def test_out_of_range_sampling_arguments_are_one_clear_error(args, message):
    with pytest.raises(SlmkitError, match=message):
        Sampling(*args)


def test_valid_sampling_arguments_pass():
    for args in ((0.0, 0, 1.0, 0.0), (0.01, 5, 0.5, 0.2, -2.0, 2.0, 16), (100.0, 0, 1.0, 0.0)):
        Sampling(*args)


def test_penalties_follow_openais_definition_over_generated_tokens_only():
    s = Sampling(temperature=1.0, presence_penalty=0.5, frequency_penalty=0.25).sampler(0)
    logits = np.zeros(8, np.float32)
    for tok in (3, 3, 5):
        s.add(tok)
    got = s.adjusted(logits)
    want = np.zeros(8)
    want[3] -= 0.5 + 2 * 0.25
    want[5] -= 0.5 + 1 * 0.25
    assert np.allclose(got, want) and not logits.any()  # the caller's logits are left alone
    assert Sampling(temperature=1.0).sampler(0).adjusted(logits) is logits  # no rule: no copy


def _words_sampler(n: int, vocab: list[str], **kw):
    return Sampling(no_repeat_ngram=n, **kw).sampler(0, lambda ids: "".join(vocab[i] for i in ids))


def test_no_repeat_ngram_strikes_out_the_token_that_would_repeat_words():
    vocab = [" soft", " shadows", ",", " bokeh", " sharp", " focus", " soft shadows"]
    s = _words_sampler(2, vocab)
    for tok in (0, 1, 2, 3, 2):                 # " soft shadows, bokeh,"
        s.add(tok)
    assert s.repeats(3) and s.repeats(6)        # ", bokeh" again; "soft shadows" in one token
    assert not s.repeats(0) and not s.repeats(4)  # ", soft" and ", sharp" are new
    logits = np.zeros(len(vocab), np.float32)
    logits[3], logits[4] = 5.0, 4.0
    assert s.next(logits) == 4                  # greedy falls to the next best
    assert logits[3] == 5.0                     # the caller's logits are left alone


def test_no_repeat_ngram_sees_through_respelling():
    """A piece spelled with other tokens is the same words: " c" "lo" "se" "-" "u" "p" repeats "close-up"."""
    vocab = [" close", "-", "up", ",", " c", "lo", "se", "u", "p", " bokeh", " bo"]
    s = _words_sampler(2, vocab)
    for tok in (0, 1, 2, 3, 9, 3):              # " close-up, bokeh,"
        s.add(tok)
    assert s.repeats(9) and s.repeats(10)       # ", bokeh" again, or the start of a respelling (", bo" "keh")
    assert not s.repeats(4)                     # ", c": no piece after a comma began with it
    s3 = _words_sampler(3, vocab)
    for tok in (0, 1, 2, 3, 9, 3, 4, 5, 6, 1):  # " close-up, bokeh, close-": every 3-gram so far is new
        s3.add(tok)
    assert s3.repeats(7) and s3.repeats(2)      # "close - u", "close - up" again, however spelled
    assert not s3.repeats(9)                    # "close - bokeh" is new


def test_no_repeat_ngram_needs_a_decoder_and_gives_way_when_everything_repeats():
    with pytest.raises(SlmkitError, match="decode"):
        Sampling(no_repeat_ngram=2).sampler(0)
    s = _words_sampler(1, [" a", " b"])
    s.add(0)
    s.add(1)
    assert s.repeats(0) and s.repeats(1)
    assert s.next(np.array([1.0, 0.0], np.float32)) == 1  # both struck out: the rule gives way


class _Bytes:
    """A tokenizer's bytes for the valid-text rule: 'caf', the two bytes of 'é', 'x', a space, end-of-text."""
    token_bytes = (b"caf", b"\xc3", b"\xa9", b"x", b" ", b"")
    starts_inside_char = np.array([False, False, True, False, False, False])
    eos_id = 5


def test_the_text_stays_valid_utf8_whatever_the_model_prefers():
    """A byte-level token may hold half a character; the model's favourite next token ('x', or ending the
    text) would leave it broken ('caf\\ufffdx'), so only the token that finishes it can come next."""
    prefer = np.array([0.0, 0.0, 1.0, 5.0, 2.0, 4.0], dtype=np.float32)  # 'x' > end > ' ' > the 'é' tail
    for settings in (Sampling(), Sampling(temperature=1.0, top_p=0.9, min_p=0.05)):
        sampler = settings.sampler(0, text=_Bytes())
        sampler.add(0)
        sampler.add(1)  # 'caf' + the first byte of 'é'
        assert sampler.pending == b"\xc3"
        assert sampler.next(prefer) == 2 and sampler.breaks_text(5) and sampler.breaks_text(3)
        sampler.add(2)
        assert sampler.pending == b"" and sampler.next(prefer) in (3, 5, 4)  # outside a character, anything whole
        assert sampler.breaks_text(2)  # a continuation byte cannot open a character
    # without the tokenizer's bytes the rule is off (the API's Sampling.sampler(seed) alone)
    bare = Sampling().sampler(0)
    bare.add(1)
    assert bare.next(prefer) == 3


def test_generated_text_never_holds_a_broken_character(demo_artifacts):
    """Typed intents pushed the demo model to half characters: without the rule these calls gave 8 outputs
    holding U+FFFD ("i\ufffdhone 15 Pro", "cr\ufffdpe") of 24 on this Q8_0 (5.7% of the typed set's samples)."""
    from slmkit.loader import load
    from slmkit.prompts import DECODING, build_prompt

    intents = [("iPhone 15 Pro on a marble countertop", "t2i"), ("vegan crêpe batter recipe", "search"),
               ("iOS 18 battery drain fix", "search"), ("MEGA SALE banner 50% OFF", "recommend")]
    with load(next(demo_artifacts.glob("*Q8_0.gguf"))) as rt:
        for intent, task in intents:
            outs = rt.generate(build_prompt(intent, task), n=6, max_new_tokens=40, seed=1, **DECODING)
            assert not any("\ufffd" in o for o in outs), outs


def test_token_logprobs_join_to_the_text_when_a_character_spans_tokens():
    """A character that byte-level BPE splits over tokens: the server's logprobs give its fragments "" and the
    token that completes it the whole character, so the tokens join to the text (and text_offset stays inside
    it) rather than to a row of U+FFFD."""
    from slmkit.model_folder import DEMO_MODEL
    from slmkit.runtimes.base import TextAssembler, TokenLogprob
    from slmkit.tokenizer import TextTokenizer

    tok = TextTokenizer.from_folder(DEMO_MODEL)
    text = " 廞 harbor café"
    ids = tok.encode(text)
    assert any(tok.decode([i]).endswith("\ufffd") for i in ids)  # the character spans tokens
    asm, logits, tokens = TextAssembler(tok, [], 0), np.zeros(tok.vocab_size, dtype=np.float32), []
    for i in ids:
        asm.add(i)
        tokens.append(TokenLogprob.of(tok, logits, i, 2, text=asm.piece).token)
    assert "".join(tokens) == text and "" in tokens
    assert TokenLogprob.of(tok, logits, ids[0], 0).token == tok.decode([ids[0]])  # no text: the token alone
