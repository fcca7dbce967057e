"""Token sampling shared by every backend: the same logits and seed give the same tokens anywhere.

:class:`Sampling` holds one call's settings (checked once, with one clear error per bad value);
:meth:`Sampling.sampler` gives the per-sequence :class:`Sampler`, which applies the repetition rules
(presence and frequency penalties over the *generated* tokens; no-repeat n-gram over the generated
*text*; neither looks at the prompt, so copying from it stays possible) and then :func:`sample_token`
(temperature, top-k, top-p, min-p). Given the tokenizer's bytes, it also keeps the text valid UTF-8: a
byte-level token can hold part of a character, and a model may follow it with something that does not
complete it, or end there ("caf\ufffd" for "café").
"""
from __future__ import annotations

import codecs
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from slmkit.errors import SlmkitError

SORT_CANDIDATES = 1024
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0
MAX_PENALTY = 2.0  # OpenAI's range for presence / frequency penalties is [-2, 2]
UNITS = re.compile(r"\w+|[^\w\s]")  # what the no-repeat n-gram rule counts: words and punctuation marks


def sample_token(logits: np.ndarray, rng: np.random.Generator, temperature: float = 0.0, top_k: int = 0,
                 top_p: float = 1.0, min_p: float = 0.0) -> int:
    """Greedy when temperature is 0; else temperature, then top-k, nucleus (top-p) and min-p sampling
    by inverse CDF. min-p keeps the tokens whose probability (after temperature, as in transformers) is
    at least ``min_p`` times the most likely token's: a confident step (copying a word) loses its
    unlikely tail while an open step keeps its spread.

    Exact, and cheap on a 50k vocabulary: candidates are sorted only when top-k or top-p needs an
    order, and then only the most likely ones (the full vocabulary only if they hold too little mass).
    """
    if temperature <= 0.0:
        return int(np.argmax(logits))
    x = logits.astype(np.float64) / temperature
    if top_k <= 0 and top_p >= 1.0:
        p = np.exp(x - x.max())
        if min_p > 0.0:
            p[p < min_p] = 0.0  # the most likely token's p is 1 here
        cdf = np.cumsum(p)
        return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(cdf) - 1))
    p_all = np.exp(x - x.max())
    p_all /= p_all.sum()
    k = top_k if top_k > 0 else min(len(x), SORT_CANDIDATES)
    order = np.argpartition(-x, k - 1)[:k] if k < len(x) else np.arange(len(x))
    order = order[np.argsort(-x[order], kind="stable")]
    if top_k <= 0 and p_all[order].sum() < top_p:
        order = np.argsort(-x, kind="stable")  # the nucleus reaches past the candidates
    p = p_all[order]
    if top_p < 1.0:  # the nucleus of the top-k tokens' mass (as transformers), else of the whole vocabulary's
        keep = int(np.searchsorted(np.cumsum(p), top_p * (p.sum() if top_k > 0 else 1.0)) + 1)
        p, order = p[:keep], order[:keep]
    if min_p > 0.0:
        keep = int(np.count_nonzero(p >= min_p * p[0]))  # p is sorted: the kept tokens lead
        p, order = p[:keep], order[:keep]
    cdf = np.cumsum(p)
    return int(order[min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(order) - 1)])


class TokenBytes(Protocol):
    """What the valid-text rule needs of a tokenizer (``TextTokenizer`` has it)."""
    token_bytes: Sequence[bytes]
    starts_inside_char: np.ndarray
    eos_id: int


def utf8_tail(data: bytes) -> bytes | None:
    """The unfinished character at the end of ``data`` (b"" when none), or None when ``data`` is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        decoder.decode(data, final=False)
    except UnicodeDecodeError:
        return None
    return decoder.getstate()[0]


def is_whole_number(x: object) -> bool:
    """An int (NumPy's too), not a bool."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


@dataclass(frozen=True)
class Sampling:
    """One call's sampling settings. Greedy when temperature is 0; penalties as OpenAI's API defines
    them (logit -= presence * [count > 0] + frequency * count), counted over generated tokens only.
    ``no_repeat_ngram`` n: no n words and punctuation marks (case-blind) occur twice in a row in the
    generated text, however they are tokenized (a rule over token ids let a model respell a banned
    piece: "close-up" came back as " c", "lo", "se", "-", "u", "p")."""
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    no_repeat_ngram: int = 0

    def __post_init__(self) -> None:
        t = self.temperature
        if not (t == 0.0 or MIN_TEMPERATURE <= t <= MAX_TEMPERATURE):
            raise SlmkitError(f"temperature must be 0 (greedy) or between {MIN_TEMPERATURE} and {MAX_TEMPERATURE:g}, "
                              f"got {t}")
        if not (is_whole_number(self.top_k) and self.top_k >= 0):
            raise SlmkitError(f"top_k must be a whole number >= 0 (0 = off), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise SlmkitError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
        if not 0.0 <= self.min_p < 1.0:
            raise SlmkitError(f"min_p must be in [0, 1) (0 = off), got {self.min_p}")
        for name in ("presence_penalty", "frequency_penalty"):
            if not -MAX_PENALTY <= getattr(self, name) <= MAX_PENALTY:
                raise SlmkitError(f"{name} must be between -{MAX_PENALTY:g} and {MAX_PENALTY:g}, got {getattr(self, name)}")
        if not (is_whole_number(self.no_repeat_ngram) and 0 <= self.no_repeat_ngram <= 16):
            raise SlmkitError(f"no_repeat_ngram must be a whole number between 0 (off) and 16, got {self.no_repeat_ngram}")

    def sampler(self, seed: int | None, decode: Callable[[Sequence[int]], str] | None = None,
                text: TokenBytes | None = None) -> "Sampler":
        """A sequence's sampler; ``decode`` (token ids to text: the tokenizer's) serves the n-gram rule,
        ``text`` (the tokenizer's bytes) the valid-text rule."""
        if seed is not None and not (is_whole_number(seed) and seed >= 0):
            raise SlmkitError(f"seed must be a whole number >= 0 (or None: unseeded), got {seed}")
        if self.no_repeat_ngram and decode is None:
            raise SlmkitError("no_repeat_ngram needs the tokenizer's decode (Sampling.sampler(seed, decode))")
        return Sampler(self, np.random.default_rng(seed), decode, text)


class Sampler:
    """One sequence's sampling state: its random stream and the tokens it generated."""

    def __init__(self, settings: Sampling, rng: np.random.Generator,
                 decode: Callable[[Sequence[int]], str] | None = None, text: TokenBytes | None = None):
        self.s, self.rng, self.decode, self.text = settings, rng, decode, text
        self.tokens: list[int] = []
        self.counts: Counter[int] = Counter()
        self.pending = b""  # the bytes of a character the generated text has begun and not finished

    def add(self, tok: int) -> None:
        """Record a generated token (not the end-of-text that stops the sequence)."""
        self.tokens.append(tok)
        self.counts[tok] += 1
        if self.text is not None and tok < len(self.text.token_bytes):
            self.pending = utf8_tail(self.pending + self.text.token_bytes[tok]) or b""

    def breaks_text(self, tok: int) -> bool:
        """Whether ``tok`` would make the generated bytes invalid UTF-8, or end the text inside a character."""
        if self.text is None or tok >= len(self.text.token_bytes):
            return False
        if tok == self.text.eos_id:
            return bool(self.pending)
        return utf8_tail(self.pending + self.text.token_bytes[tok]) is None

    def _keep_text_valid(self, logits: np.ndarray) -> np.ndarray:
        """Strike out at once the tokens that cannot be next: inside a character only a continuation byte can,
        and outside one it cannot (the rest :meth:`breaks_text` judges as they are drawn)."""
        inside = self.text.starts_inside_char
        if len(inside) < len(logits):  # ids past the tokenizer's (a padded head) hold no bytes
            inside = np.concatenate([inside, np.zeros(len(logits) - len(inside), dtype=bool)])
        out = logits.astype(np.float32, copy=True)
        out[~inside if self.pending else inside] = -np.inf
        return out if np.isfinite(out).any() else logits

    def adjusted(self, logits: np.ndarray) -> np.ndarray:
        """The logits after the penalties (a copy when one applies)."""
        s, out = self.s, logits
        if (s.presence_penalty or s.frequency_penalty) and self.counts:
            out = out.astype(np.float32, copy=True)
            ids = np.fromiter(self.counts, dtype=np.int64, count=len(self.counts))
            counts = np.fromiter(self.counts.values(), dtype=np.float32, count=len(self.counts))
            out[ids] -= s.presence_penalty + s.frequency_penalty * counts
        return out

    def repeats(self, tok: int) -> bool:
        """Whether ``tok`` would make the text's last ``no_repeat_ngram`` units (words, punctuation marks)
        repeat earlier ones; the last unit counts as a repeat while it is the start of the earlier one's,
        so no respelling of a banned word can begin."""
        n = self.s.no_repeat_ngram
        if not n or self.decode is None:
            return False
        units = UNITS.findall(self.decode([*self.tokens, tok]).lower())
        if len(units) <= n:
            return False
        *head, last = units[-n:]
        return any(units[i:i + n - 1] == head and units[i + n - 1].startswith(last)
                   for i in range(len(units) - n))

    def next(self, logits: np.ndarray) -> int:
        """The next token for these logits (not recorded: call :meth:`add` when it is kept). A token that
        would repeat an n-gram or break a character is struck out and the draw made again from what is left."""
        s = self.s
        out = self.adjusted(logits)
        if self.text is not None:
            out = self._keep_text_valid(out)
        while True:
            tok = sample_token(out, self.rng, s.temperature, s.top_k, s.top_p, s.min_p)
            if not self.breaks_text(tok) and not self.repeats(tok):
                return tok
            out = out.copy() if out is logits else out
            out[tok] = -np.inf
            if not np.isfinite(out).any():
                return tok  # every token would repeat: the rule gives way
