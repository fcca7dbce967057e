"""Continuous batching: independent generations decoded together, joining and leaving at token boundaries.

A :class:`ContinuousBatch` holds up to ``size`` generations of one runtime. ``add`` only checks a prompt
and takes a free slot; every ``step`` evaluates, in one backend call, the last sampled token of each
running generation together with up to ``chunk`` tokens of waiting prompts (several prompts share the
chunk in arrival order, a long prompt takes several steps), then samples one token for every generation
whose logits are current, a prompt's first token in the step that finishes it. So a long prompt delays
the running generations by at most one chunk a step, as llama-server's chunked prefill does.

Each generation samples with its own sampler and seed, as :meth:`Runtime.stream_chunks` would: same
settings, same seed, the same tokens wherever the logits agree.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from slmkit.errors import SlmkitError
from slmkit.runtimes.base import Chunk, Runtime, TextAssembler, TokenLogprob, sampling_settings
from slmkit.runtimes.sampling import Sampler, is_whole_number

PREFILL_CHUNK = 256  # prompt tokens evaluated per step, shared by the prompts waiting


class StepError(Exception):
    """A backend call failed during a step: ``handles`` are the generations it touched (they are removed,
    their slots free); the others go on."""

    def __init__(self, handles: list[int], cause: BaseException):
        super().__init__(str(cause))
        self.handles, self.cause = handles, cause


@dataclass
class _Generation:
    """One generation in a slot: the tokens still to evaluate (the prompt's rest, then each sampled token),
    and the next token's logits once they are current."""
    slot: int
    sampler: Sampler
    text: TextAssembler
    max_new_tokens: int
    todo: list[int]
    ignore_eos: bool = False
    logprobs: int | None = None  # report each token's log-probability and this many top alternatives
    logits: np.ndarray | None = field(default=None, repr=False)

    @property
    def prefilling(self) -> bool:
        return self.text.count == 0


class ContinuousBatch:
    """Up to ``size`` generations of ``runtime`` decoded together. Not thread-safe: one caller drives it
    (the runtime's lock is taken for each backend call, so other calls on the runtime stay safe)."""

    def __init__(self, runtime: Runtime, size: int, chunk: int = PREFILL_CHUNK):
        if size < 1:
            raise SlmkitError(f"a batch needs at least one slot, got {size}")
        if chunk < 1:
            raise SlmkitError(f"the prefill chunk must be at least one token, got {chunk}")
        self.rt, self.size, self.chunk = runtime, size, chunk
        self._gens: dict[int, _Generation] = {}
        self._next = 0
        with runtime._lock:
            runtime._check_open()
            runtime._slots_open(size)

    @property
    def free(self) -> int:
        return self.size - len(self._gens)

    def __len__(self) -> int:
        return len(self._gens)

    def add(self, prompt: str | Sequence[int], *, max_new_tokens: int = 64, seed: int | None = 0,
            stop: Sequence[str] = (), truncate: bool = False, ignore_eos: bool = False, logprobs: int | None = None,
            **sampling: Any) -> int:
        """Start a generation in a free slot (its prompt is evaluated by the next steps); returns its handle.
        Arguments as ``stream``; ``ignore_eos`` never samples end-of-text, so the text runs to
        ``max_new_tokens`` (for benchmarks); ``logprobs`` (0-20) gives every chunk its tokens'
        :class:`TokenLogprob` with that many alternatives. Bad arguments raise here, before any slot is taken."""
        if logprobs is not None and not (is_whole_number(logprobs) and 0 <= logprobs <= 20):
            raise SlmkitError(f"logprobs must be a whole number between 0 and 20, got {logprobs}")
        if not self.free:
            raise SlmkitError(f"all {self.size} slots of the batch are in use")
        settings = sampling_settings(sampling)
        ids = self.rt._prompt_ids(prompt, max_new_tokens, truncate)
        sampler = self.rt._sampler(settings, seed)
        slot = min(set(range(self.size)) - {g.slot for g in self._gens.values()})
        handle, self._next = self._next, self._next + 1
        self._gens[handle] = _Generation(slot, sampler, TextAssembler(self.rt.tokenizer, stop, len(ids)),
                                         max_new_tokens, list(ids), ignore_eos, logprobs)
        return handle

    def remove(self, handle: int) -> None:
        """End a generation early (a client went away, a failure); its slot is free again."""
        gen = self._gens.pop(handle, None)
        if gen is not None:
            with self.rt._lock:
                if not self.rt._released:
                    self.rt._slot_free(gen.slot)

    def prefilling(self, handle: int) -> bool:
        """Whether a generation is still evaluating its prompt (False once it has ended)."""
        gen = self._gens.get(handle)
        return gen is not None and gen.prefilling

    def step(self) -> list[tuple[int, Chunk]]:
        """Evaluate what is waiting and sample one token for every generation with current logits:
        ``(handle, chunk)`` each; a chunk with ``finish`` set is its last. A backend failure raises
        :class:`StepError` naming the generations it touched, which are removed."""
        handles, parts = self._plan()
        if parts:
            try:
                with self.rt._lock:
                    self.rt._check_open()
                    rows = self.rt._slots_eval(parts)
            except Exception as e:
                for h in handles:
                    self._drop_after_failure(h)
                raise StepError(handles, e) from e
            for h, (_, ids, _), row in zip(handles, parts, rows):
                gen = self._gens[h]
                del gen.todo[:len(ids)]
                gen.logits = row
        out = []
        for handle, gen in list(self._gens.items()):
            if gen.logits is not None:
                out.append((handle, self._sample(handle, gen)))
        return out

    def _plan(self) -> tuple[list[int], list[tuple[int, list[int], bool]]]:
        """The step's backend input: every running generation's sampled token, then prompt chunks in
        arrival order while the chunk budget lasts; each part ``(slot, ids, logits wanted)``."""
        handles, parts = [], []
        for handle, gen in self._gens.items():
            if gen.todo and not gen.prefilling:
                handles.append(handle)
                parts.append((gen.slot, gen.todo[:1], True))
        # a step's tokens stay within max(context, slots): the batch a backend is sized for
        budget = min(self.chunk, max(self.rt.n_ctx, self.size) - len(parts))
        for handle, gen in self._gens.items():
            if gen.todo and gen.prefilling and budget > 0:
                take = gen.todo[:budget]
                budget -= len(take)
                handles.append(handle)
                parts.append((gen.slot, take, len(take) == len(gen.todo)))
        return handles, parts

    def _sample(self, handle: int, gen: _Generation) -> Chunk:
        logits, gen.logits = gen.logits, None
        eos = self.rt.tokenizer.eos_id
        if gen.ignore_eos:
            logits[eos] = -np.inf
        tok = gen.sampler.next(logits)
        if tok == eos:
            chunk = gen.text.end("stop")
        else:
            gen.sampler.add(tok)
            chunk = gen.text.add(tok)
            piece = gen.text.piece
            if chunk.finish is None and chunk.tokens == gen.max_new_tokens:
                last = gen.text.end("length")
                piece += gen.text.piece
                chunk = Chunk(chunk.text + last.text, chunk.prompt_tokens, chunk.tokens, last.finish)
            if gen.logprobs is not None:
                lp = TokenLogprob.of(self.rt.tokenizer, logits, tok, gen.logprobs, text=piece)
                chunk = replace(chunk, logprobs=(lp,))
        if chunk.finish is None:
            gen.todo.append(tok)
        else:
            self.remove(handle)
        return chunk

    def _drop_after_failure(self, handle: int) -> None:
        try:
            self.remove(handle)
        except Exception:  # the backend is failing: the slot's state is forgotten on the Python side
            self._gens.pop(handle, None)

    def close(self) -> None:
        self._gens.clear()
        with self.rt._lock:
            if not self.rt._released:
                self.rt._slots_close()

    def __enter__(self) -> "ContinuousBatch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
