"""The one runtime protocol. Backends implement two primitives; everything else lives here once.

A backend subclasses :class:`Runtime` and implements ``_reset()`` (forget the sequence) and
``_eval(ids)`` (append tokens to the sequence, return their next-token logits). Generation, sampling,
streaming, scoring, context checks and locking are shared, so every backend has the same semantics:
the same seed gives the same tokens wherever the logits agree.
"""
from __future__ import annotations

import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slmkit.errors import SlmkitError
from slmkit.metrics import log_softmax
from slmkit.runtimes.sampling import Sampler, Sampling, is_whole_number
from slmkit.tokenizer import TextTokenizer

@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability under the model (log-softmax of the raw logits: before
    temperature, penalties and truncation, so every backend and sampler reports the same figure) and the
    ``top`` most likely tokens at that step."""
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(cls, tokenizer: TextTokenizer, logits: np.ndarray, tok: int, top: int,
           text: str | None = None) -> "TokenLogprob":
        """``text``: the token's share of the generated text (:attr:`TextAssembler.piece`), so that the tokens
        join to the text even where a character spans several byte-level tokens; default: the token decoded
        alone."""
        lp = log_softmax(logits)
        best: np.ndarray = np.empty(0, dtype=np.int64)
        if top > 0:  # the top tokens, most likely first, ties by id: without sorting the whole vocabulary
            top = min(top, len(lp))
            cand = np.flatnonzero(lp >= np.partition(lp, -top)[-top])
            best = cand[np.argsort(-lp[cand], kind="stable")][:top]
        token = tokenizer.decode([tok]) if text is None else text
        return cls(token, float(lp[tok]), tuple((tokenizer.decode([int(i)]), float(lp[i])) for i in best))


@dataclass(frozen=True)
class Chunk:
    """A piece of generated text and where its generation stands (what a server reports per token)."""
    text: str
    prompt_tokens: int           # the prompt's length in tokens (after truncation)
    tokens: int                  # tokens generated so far
    finish: str | None = None    # on the last chunk only: "stop" (end-of-text or a stop string) or "length"
    logprobs: tuple[TokenLogprob, ...] = ()  # the tokens sampled for this chunk, when they were asked for


class _Sequence:
    """The identity of one stream's sequence (weakly referenced: an abandoned stream's parked state goes
    with it)."""

    __slots__ = ("__weakref__",)


def sampling_settings(kwargs: dict[str, Any]) -> Sampling:
    """The :class:`Sampling` for a call's keyword arguments; an unknown one is one clear error."""
    unknown = set(kwargs) - set(Sampling.__dataclass_fields__)
    if unknown:
        raise SlmkitError(f"unknown argument(s) {', '.join(sorted(unknown))}; sampling takes "
                          f"{', '.join(Sampling.__dataclass_fields__)}")
    return Sampling(**kwargs)


def stop_index(text: str, stop: Sequence[str]) -> int | None:
    """Where the first of the stop strings begins in ``text`` (None when none occurs)."""
    return min((text.find(s) for s in stop if s and s in text), default=None)


class TextAssembler:
    """Generated tokens to text chunks: pieces are sent once their bytes end on a whole UTF-8 character,
    text that may still become a stop string is held back, and a stop string ends the text where it
    begins. Shared by :meth:`Runtime.stream_chunks` and continuous batching, so both cut text alike."""

    def __init__(self, tokenizer: TextTokenizer, stop: Sequence[str], prompt_tokens: int):
        self.tokenizer, self.stop, self.prompt_tokens = tokenizer, list(stop), prompt_tokens
        self.text, self.sent, self.count = "", "", 0
        self.window: list[int] = []  # tokens whose bytes do not yet end on a whole UTF-8 character
        # the text the last add() or end() appended: a byte fragment of a character adds "", the token that
        # completes it the whole character
        self.piece = ""
        self.hold = max((len(x) for x in self.stop if x), default=1) - 1

    def add(self, tok: int) -> Chunk:
        """The chunk after one more token (its text may be empty); finish is "stop" at a stop string."""
        self.count += 1
        self.window.append(tok)
        piece = self.tokenizer.decode(self.window)  # byte-level BPE: pieces decode independently
        if piece.endswith("\ufffd"):
            self.piece = ""
            return Chunk("", self.prompt_tokens, self.count)
        self.window, self.piece = [], piece
        self.text += piece
        cut = stop_index(self.text, self.stop)
        if cut is not None:
            return self._chunk(cut, "stop")
        return self._chunk(len(self.text) - self.hold, None)

    def end(self, reason: str) -> Chunk:
        """The last chunk when generation ends without a stop string: "stop" (end-of-text) or "length"."""
        self.piece = self.tokenizer.decode(self.window) if self.window else ""
        self.text += self.piece
        self.window = []
        cut = stop_index(self.text, self.stop)
        return self._chunk(len(self.text) if cut is None else cut, reason if cut is None else "stop")

    def _chunk(self, upto: int, finish: str | None) -> Chunk:
        new = self.text[len(self.sent):upto] if upto > len(self.sent) else ""
        self.sent += new
        return Chunk(new, self.prompt_tokens, self.count, finish)


class Runtime(ABC):
    """Load once, then ``generate`` / ``stream`` / ``score`` over any backend."""

    backend: str = "?"

    def __init__(self, tokenizer: TextTokenizer, n_ctx: int, info: dict[str, Any]):
        self.tokenizer = tokenizer
        self.n_ctx = n_ctx
        self.info = {"backend": self.backend, "n_ctx": n_ctx, **info}
        self._lock = threading.Lock()
        self._closed = self._released = False
        self._owner: _Sequence | None = None  # the stream whose sequence the backend holds now
        self._parked: weakref.WeakKeyDictionary[_Sequence, Any] = weakref.WeakKeyDictionary()

    # --- what a backend implements -------------------------------------------------------------
    @abstractmethod
    def _reset(self) -> None:
        """Forget the current sequence (clear the KV cache)."""

    @abstractmethod
    def _eval(self, ids: Sequence[int], all_logits: bool = True) -> np.ndarray:
        """Append ``ids`` to the sequence; return float32 logits [len(ids), n_vocab], or only the last
        row ([1, n_vocab]) when ``all_logits`` is false and the backend can skip the others."""

    def _close(self) -> None:
        """Release native resources."""

    def _save(self) -> Any:
        """The current sequence's state (KV cache, length), to :meth:`_restore` exactly later; None when
        the backend cannot (a paused stream then re-evaluates its tokens instead)."""
        return None

    def _restore(self, state: Any) -> None:
        """Make a state from :meth:`_save` the current sequence again."""
        raise NotImplementedError

    # Optional: decode several continuations of one prompt as one batch (weights read once per step).
    batched = False

    def _fork(self, n: int, prompt: Sequence[int], length: int) -> None:
        """Turn the current single sequence (``prompt``, already evaluated) into ``n`` identical sequences
        that will grow to ``length`` tokens."""
        raise NotImplementedError

    def _eval_batch(self, tokens: Sequence[int]) -> np.ndarray:
        """Append one token to each of the forked sequences; return their logits [n, n_vocab]."""
        raise NotImplementedError

    # Optional: independent sequences decoded together (continuous batching; see runtimes/batching.py).
    # The defaults below keep each slot's state with _save / _restore and evaluate slots one by one:
    # correct on every backend that can save; a backend overrides them to decode slots as one batch.
    def _slots_open(self, n: int) -> None:
        """Prepare ``n`` slots (called under the lock)."""
        self._slot_states: dict[int, Any] = {}

    def _slots_eval(self, parts: Sequence[tuple[int, Sequence[int], bool]]) -> list[np.ndarray | None]:
        """Append each part's ``ids`` to its ``slot`` (an empty slot starts a new sequence); return, per part,
        the next-token logits after its last token [n_vocab] where its flag asks for them, else None."""
        self._take_over(None)
        rows: list[np.ndarray | None] = []
        for slot, ids, want in parts:
            state = self._slot_states.get(slot)
            if state is None:
                self._reset()
            else:
                self._restore(state)
            logits = self._eval(ids, all_logits=False)[-1]
            state = self._save()
            if state is None:
                raise SlmkitError(f"the {self.backend} backend cannot hold several sequences")
            self._slot_states[slot] = state
            rows.append(logits if want else None)
        return rows

    def _slot_free(self, slot: int) -> None:
        self._slot_states.pop(slot, None)

    def _slots_close(self) -> None:
        self._slot_states = {}

    # --- shared behaviour ------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise SlmkitError(f"expected text (str), got {type(text).__name__}; decode bytes as UTF-8 first")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise SlmkitError("input is not valid UTF-8 text (it holds lone surrogate characters)") from None
        return self.tokenizer.encode(text)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids))

    def _ids(self, text_or_ids: str | Sequence[int]) -> list[int]:
        if isinstance(text_or_ids, (bytes, bytearray, memoryview)):
            raise SlmkitError("expected text (str) or token ids, got bytes; decode them as UTF-8 first")
        ids = self.tokenize(text_or_ids) if isinstance(text_or_ids, str) else [int(i) for i in text_or_ids]
        if not ids:
            raise SlmkitError("empty input")
        vocab = self.tokenizer.vocab_size
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            raise SlmkitError(f"token id {bad[0]} is outside the vocabulary (0..{vocab - 1})")
        return ids

    def _check_open(self) -> None:
        if self._closed:
            raise SlmkitError("this runtime is closed")

    def _take_over(self, seq: _Sequence | None) -> None:
        """Under the lock, before a call replaces the backend's sequence: park a paused stream's state so
        that it resumes exactly where it was."""
        if self._owner is not None and self._owner is not seq:
            state = self._save()
            if state is not None:
                self._parked[self._owner] = state
        self._owner = seq

    def score(self, text_or_ids: str | Sequence[int]) -> np.ndarray:
        """Logits at every position: row t is the distribution of token t+1. Shape [T, n_vocab]."""
        ids = self._ids(text_or_ids)
        if len(ids) > self.n_ctx:
            raise SlmkitError(f"input of {len(ids)} tokens is longer than the context of {self.n_ctx} tokens")
        with self._lock:
            self._check_open()
            self._take_over(None)
            self._reset()
            return np.asarray(self._eval(ids), dtype=np.float32)

    def token_logprobs(self, text_or_ids: str | Sequence[int]) -> np.ndarray:
        """Log-probability of each token after the first, given the ones before it. Shape [T-1]."""
        ids = self._ids(text_or_ids)
        lp = log_softmax(self.score(ids)[:-1])
        return lp[np.arange(len(ids) - 1), ids[1:]]

    def _prompt_ids(self, prompt: str | Sequence[int], max_new_tokens: int, truncate: bool) -> list[int]:
        """Prompt ids checked against the context; ``truncate`` keeps the most recent tokens that fit."""
        ids = self._ids(prompt)
        if not 1 <= max_new_tokens <= self.n_ctx - 1:
            raise SlmkitError(f"max_new_tokens must be between 1 and {self.n_ctx - 1}, got {max_new_tokens}")
        if len(ids) + max_new_tokens > self.n_ctx:
            if truncate:
                return ids[len(ids) + max_new_tokens - self.n_ctx:]
            raise SlmkitError(f"prompt of {len(ids)} tokens plus max_new_tokens {max_new_tokens} exceeds "
                              f"the context of {self.n_ctx} tokens (to keep its last tokens: truncate=True in Python, "
                              "--truncate on the command line)")
        return ids

    def _sampler(self, settings: Sampling, seed: int | None) -> Sampler:
        """One sequence's sampler; its n-gram rule reads the text as this runtime's tokenizer decodes it, and
        its valid-text rule the tokenizer's bytes."""
        return settings.sampler(seed, lambda ids: self.tokenizer.decode(ids, skip_special=True), self.tokenizer)

    def _token_stream(self, prompt: str | Sequence[int], max_new_tokens: int, sampling: Sampling, seed: int | None,
                      truncate: bool = False) -> Iterator[int]:
        """Sampled token ids. The lock is held only while the backend computes, never across ``yield``:
        a stream that is paused or abandoned blocks no other call and no ``close()``. A call that runs
        while this stream is paused parks its state, and the stream restores it when it goes on."""
        ids = self._prompt_ids(prompt, max_new_tokens, truncate)
        sampler = self._sampler(sampling, seed)
        seq = _Sequence()
        with self._lock:
            self._check_open()
            self._take_over(seq)
            self._reset()
            logits = self._eval(ids, all_logits=False)[-1]
        for k in range(max_new_tokens):
            tok = sampler.next(logits)
            if tok == self.tokenizer.eos_id:
                break
            sampler.add(tok)
            yield tok
            ids.append(tok)
            if k == max_new_tokens - 1:
                break
            with self._lock:
                self._check_open()
                if self._owner is not seq:  # another call used the backend while this stream was paused
                    self._take_over(seq)
                    state = self._parked.pop(seq, None)
                    if state is None:
                        self._reset()
                        self._eval(ids[:-1], all_logits=False)
                    else:
                        self._restore(state)
                logits = self._eval([tok], all_logits=False)[-1]
        with self._lock:
            if self._owner is seq:
                self._owner = None

    def stream(self, prompt: str | Sequence[int], *, max_new_tokens: int = 64, seed: int | None = 0,
               stop: Sequence[str] = (), truncate: bool = False, **sampling: Any) -> Iterator[str]:
        """Generated text in pieces, as tokens complete whole UTF-8 characters. A prompt too long for the
        context is an error unless ``truncate`` (then its oldest tokens are dropped). ``sampling``: the
        fields of :class:`~slmkit.runtimes.sampling.Sampling` (temperature, top_k, top_p, min_p,
        presence_penalty, frequency_penalty, no_repeat_ngram); greedy by default."""
        for chunk in self.stream_chunks(prompt, max_new_tokens=max_new_tokens, seed=seed, stop=stop,
                                        truncate=truncate, **sampling):
            if chunk.text:
                yield chunk.text

    def stream_chunks(self, prompt: str | Sequence[int], *, max_new_tokens: int = 64, seed: int | None = 0,
                      stop: Sequence[str] = (), truncate: bool = False, **sampling: Any) -> Iterator[Chunk]:
        """:meth:`stream` as :class:`Chunk` s: each piece with the token count so far; the last chunk (its
        text may be empty) says why generation ended."""
        settings = sampling_settings(sampling)
        ids = self._prompt_ids(prompt, max_new_tokens, truncate)  # tokenized once: the stream takes these ids
        text = TextAssembler(self.tokenizer, stop, len(ids))
        for tok in self._token_stream(ids, max_new_tokens, settings, seed):
            chunk = text.add(tok)
            if chunk.finish is not None:
                yield chunk
                return
            if chunk.text:
                yield chunk
        yield text.end("length" if text.count == max_new_tokens else "stop")

    def generate(self, prompt: str | Sequence[int], *, n: int = 1, **kwargs: Any) -> str | list[str]:
        """The generated text (the prompt excluded); a list of ``n`` candidates when ``n`` > 1, candidate i
        sampled with seed ``seed + i``. Other arguments as :meth:`stream`."""
        if n == 1:
            return "".join(self.stream(prompt, **kwargs))
        if not (is_whole_number(n) and 1 <= n <= 64):
            raise SlmkitError(f"n must be a whole number between 1 and 64, got {n}")
        seed = kwargs.pop("seed", 0)
        if self.batched:
            return self._generate_batch(prompt, n, seed, **kwargs)
        return ["".join(self.stream(prompt, seed=None if seed is None else seed + i, **kwargs)) for i in range(n)]

    def _generate_batch(self, prompt: str | Sequence[int], n: int, seed: int | None, *, max_new_tokens: int = 64,
                        stop: Sequence[str] = (), truncate: bool = False, **sampling: Any) -> list[str]:
        """n candidates decoded as one batch; candidate i samples with seed + i."""
        settings = sampling_settings(sampling)
        ids = self._prompt_ids(prompt, max_new_tokens, truncate)
        samplers = [self._sampler(settings, None if seed is None else seed + i) for i in range(n)]
        eos = self.tokenizer.eos_id
        outs: list[list[int]] = [[] for _ in range(n)]
        done = [False] * n
        with self._lock:
            self._check_open()
            self._take_over(None)
            self._reset()
            first = self._eval(ids, all_logits=False)[-1]
            self._fork(n, ids, len(ids) + max_new_tokens)
            logits = np.repeat(first[None], n, axis=0)
            for k in range(max_new_tokens):
                step = []
                for i in range(n):
                    tok = eos if done[i] else samplers[i].next(logits[i])
                    done[i] = done[i] or tok == eos
                    if not done[i]:
                        outs[i].append(tok)
                        samplers[i].add(tok)
                    step.append(tok)
                if all(done) or k == max_new_tokens - 1:
                    break
                if self._closed:  # close() was asked for from another thread: stop at a token boundary
                    raise SlmkitError("this runtime was closed during the call")
                logits = self._eval_batch(step)
        texts = [self.tokenizer.decode(o) for o in outs]
        return [t[: stop_index(t, stop)] for t in texts]

    def close(self) -> None:
        """Release the backend. A call in progress on another thread ends at its next token with an
        error; paused streams raise the same error when resumed. Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True  # seen by batched decoding between steps, without the lock
        with self._lock:
            if not self._released:
                self._released = True
                self._close()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
