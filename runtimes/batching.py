"""Continuous batching: independent generations decoded together, joining and leaving at token boundaries.

A :class:`ContinuousBatch` holds up to ``size`` sequences of one runtime. ``add`` evaluates a prompt into
a free slot; each ``step`` samples one token for every sequence (each with its own sampler and seed, as
:meth:`Runtime.stream_chunks` would) and evaluates all of them as one batch where the backend can
(llama.cpp: one ``llama_decode`` over several sequences; others: slot by slot through saved states).
A finished or removed sequence frees its slot for the next ``add``. Same settings, same seed: the same
tokens as ``stream_chunks`` wherever the logits agree.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from slmkit.errors import SlmkitError
from slmkit.runtimes.base import Chunk, Runtime, TextAssembler, TokenLogprob, sampling_settings
from slmkit.runtimes.sampling import Sampler, is_whole_number


@dataclass
class _Seq:
    slot: int
    sampler: Sampler
    text: TextAssembler
    max_new_tokens: int
    logits: np.ndarray  # the next token's distribution, from the last evaluation
    ignore_eos: bool = False
    logprobs: int | None = None  # report each token's log-probability and this many top alternatives


class ContinuousBatch:
    """Up to ``size`` generations of ``runtime`` decoded together. Not thread-safe: one caller drives it
    (the runtime's lock is taken for each backend call, so other calls on the runtime stay safe)."""

    def __init__(self, runtime: Runtime, size: int):
        if size < 1:
            raise SlmkitError(f"a batch needs at least one slot, got {size}")
        self.rt, self.size = runtime, size
        self._seqs: dict[int, _Seq] = {}
        self._next = 0
        with runtime._lock:
            runtime._check_open()
            runtime._slots_open(size)

    @property
    def free(self) -> int:
        return self.size - len(self._seqs)

    def __len__(self) -> int:
        return len(self._seqs)

    def add(self, prompt: str | Sequence[int], *, max_new_tokens: int = 64, seed: int | None = 0,
            stop: Sequence[str] = (), truncate: bool = False, ignore_eos: bool = False, logprobs: int | None = None,
            **sampling: Any) -> int:
        """Start a generation (its prompt is evaluated now); returns its handle. Arguments as ``stream``;
        ``ignore_eos`` never samples end-of-text, so the text runs to ``max_new_tokens`` (for benchmarks);
        ``logprobs`` (0-20) gives every chunk its tokens' :class:`TokenLogprob` with that many alternatives."""
        if logprobs is not None and not (is_whole_number(logprobs) and 0 <= logprobs <= 20):
            raise SlmkitError(f"logprobs must be a whole number between 0 and 20, got {logprobs}")
        if not self.free:
            raise SlmkitError(f"all {self.size} slots of the batch are in use")
        settings = sampling_settings(sampling)
        ids = self.rt._prompt_ids(prompt, max_new_tokens, truncate)
        slot = min(set(range(self.size)) - {s.slot for s in self._seqs.values()})
        with self.rt._lock:
            self.rt._check_open()
            logits = self.rt._slot_prefill(slot, ids)
        handle, self._next = self._next, self._next + 1
        self._seqs[handle] = _Seq(slot, self.rt._sampler(settings, seed), TextAssembler(self.rt.tokenizer, stop, len(ids)),
                                  max_new_tokens, logits, ignore_eos, logprobs)
        return handle

    def remove(self, handle: int) -> None:
        """End a generation early (a client went away); its slot is free again."""
        seq = self._seqs.pop(handle, None)
        if seq is not None:
            with self.rt._lock:
                self.rt._slot_free(seq.slot)

    def step(self) -> list[tuple[int, Chunk]]:
        """One token for every generation: ``(handle, chunk)`` each; a chunk with ``finish`` set is its last."""
        out: list[tuple[int, Chunk]] = []
        going: list[tuple[int, int]] = []
        eos = self.rt.tokenizer.eos_id
        for handle, seq in list(self._seqs.items()):
            if seq.ignore_eos:
                seq.logits[eos] = -np.inf
            tok = seq.sampler.next(seq.logits)
            if tok == eos:
                chunk = seq.text.end("stop")
            else:
                seq.sampler.add(tok)
                chunk = seq.text.add(tok)
                piece = seq.text.piece
                if chunk.finish is None and chunk.tokens == seq.max_new_tokens:
                    last = seq.text.end("length")
                    piece += seq.text.piece
                    chunk = Chunk(chunk.text + last.text, chunk.prompt_tokens, chunk.tokens, last.finish)
                if seq.logprobs is not None:
                    lp = TokenLogprob.of(self.rt.tokenizer, seq.logits, tok, seq.logprobs, text=piece)
                    chunk = replace(chunk, logprobs=(lp,))
            out.append((handle, chunk))
            if chunk.finish is None:
                going.append((handle, tok))
            else:
                self.remove(handle)
        if going:
            with self.rt._lock:
                self.rt._check_open()
                logits = self.rt._slots_step([self._seqs[h].slot for h, _ in going], [t for _, t in going])
            for (handle, _), row in zip(going, logits):
                self._seqs[handle].logits = row
        return out

    def close(self) -> None:
        self._seqs.clear()
        with self.rt._lock:
            if not self.rt._released:
                self.rt._slots_close()

    def __enter__(self) -> "ContinuousBatch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
