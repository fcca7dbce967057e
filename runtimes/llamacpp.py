"""llama.cpp backend (llama-cpp-python) for GGUF artifacts.

Pitfalls handled here: llama.cpp aborts the whole process when evaluation passes the model's context,
so ``n_ctx`` is capped at the model's and the shared Runtime checks every request against it before
any token is evaluated; ``Llama.detokenize`` mangles long tokens, so text is decoded with the HF-format
tokenizer (beside the file, or rebuilt from the GGUF's own vocabulary); logits are copied out of
llama.cpp's reused output buffer; files are validated in Python before llama.cpp opens them.
"""
from __future__ import annotations

import ctypes
import functools
import os
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from slmkit.errors import SlmkitError, held_interrupt
from slmkit.files import sha256_file
from slmkit.gguf_file import GgufInfo, gguf_tokenizer, open_gguf
from slmkit.runtimes.base import Runtime
from slmkit.tokenizer import TextTokenizer, tokenizer_kind

# llama.cpp's OpenMP threads spin between operations: about 10x faster decode on a quiet CPU (measured
# here), but throughput collapses when other work competes for the cores. SLMKIT_OMP_PASSIVE=1 makes
# them sleep instead; it must be set before llama_cpp loads.
if os.environ.get("SLMKIT_OMP_PASSIVE") == "1":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# llama.cpp's AMX backend (Intel Xeons since Sapphire Rapids) repacks Q4 / Q8 weights at load and then
# segfaults in its mat-mul on the demo model (seen here on a Xeon with AMX_INT8 = 1, both Q8_0 and Q4_0;
# ggml-org/llama.cpp#20824 reports the same, machine-dependent and unfixed). On such a CPU, or with
# SLMKIT_LLAMA_REPACK=0, weights stay in plain CPU buffers (llama_model_params.use_extra_bufts = False,
# llama-cli's --no-repack); elsewhere the repacked kernels (AVX2, arm64) are kept.
_PARAMS_LOCK = threading.Lock()


def repack_weights(llama_cpp) -> bool:
    """Whether llama.cpp may move weights into its extra (repacked, AMX) buffer types on this CPU."""
    if os.environ.get("SLMKIT_LLAMA_REPACK") == "0":
        return False
    return b"AMX_INT8 = 1" not in llama_cpp.llama_print_system_info()


def new_llama(**kwargs):
    """``llama_cpp.Llama(**kwargs)``, with extra buffer types off where :func:`repack_weights` says so
    (llama-cpp-python takes no such argument: its default model parameters are wrapped for this load)."""
    import llama_cpp
    from llama_cpp import llama as llama_module

    if repack_weights(llama_cpp):
        return llama_cpp.Llama(**kwargs)
    lib = llama_module.llama_cpp
    if "use_extra_bufts" not in dict(lib.llama_model_params._fields_):
        raise SlmkitError(f"llama-cpp-python {llama_cpp.__version__} cannot load without repacked weights, which "
                          "segfault on this CPU (AMX): install llama-cpp-python >= 0.3.36")
    with _PARAMS_LOCK:
        default = lib.llama_model_default_params

        def no_repack():
            params = default()
            params.use_extra_bufts = False
            return params

        lib.llama_model_default_params = no_repack
        try:
            return llama_cpp.Llama(**kwargs)
        finally:
            lib.llama_model_default_params = default


def _native(method):
    """Run a method that calls into llama.cpp with Ctrl-C held (:func:`held_interrupt`): llama.cpp logs through
    llama-cpp-python's Python callback (creating and freeing the contexts of n candidates and of continuous
    batching, closing a model), and a KeyboardInterrupt raised inside that callback is swallowed, so a Ctrl-C
    there was lost: a quantize's checks ran on and exited 0 (a CI failure)."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with held_interrupt():
            return method(self, *args, **kwargs)
    return run


def _tokenizer_for(path: Path, meta: GgufInfo) -> TextTokenizer:
    if tokenizer_kind(path.parent):
        return TextTokenizer.from_folder(path.parent)
    return gguf_tokenizer(meta)


class LlamaCppRuntime(Runtime):
    """Runs a GPT-2 GGUF file through llama.cpp."""

    backend = "llama.cpp"
    batched = True

    def __init__(self, path: str | Path, threads: int | None = None, n_ctx: int | None = None,
                 sha256: str | None = None):
        """``sha256``: the file's hash when the caller has already computed it (else it is computed)."""
        path = Path(path)
        meta = open_gguf(path)
        tokenizer = _tokenizer_for(path, meta)
        n_ctx = min(n_ctx or meta.context_length, meta.context_length)
        threads = threads or max(1, os.cpu_count() or 1)
        import llama_cpp

        try:
            # flash attention: decode measured 14-18% faster on the 124M shape (RESULTS.md); a Ctrl-C during the
            # load would be lost in llama.cpp's log callback
            with held_interrupt():
                self._llm = new_llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                                      n_threads=threads, n_threads_batch=threads, logits_all=False,
                                      flash_attn=True, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise SlmkitError(f"{path}: llama.cpp could not load the file ({e})") from None
        self._multi: _BatchedContext | None = None
        self._slots: _BatchedContext | None = None
        if self._llm.n_vocab() < tokenizer.vocab_size:
            raise SlmkitError(f"{path}: tokenizer ({tokenizer.vocab_size} tokens) does not match the model "
                              f"({self._llm.n_vocab()})")
        super().__init__(tokenizer, n_ctx, {"format": "gguf", "quant": _quant_name(meta.file_type),
                                            "file": str(path), "threads": threads,
                                            "repacked_weights": repack_weights(llama_cpp),
                                            "tensor_types": dict(Counter(meta.tensor_types.values())),
                                            "bits_per_weight": round(meta.bits_per_weight, 3),
                                            "sha256": sha256 or sha256_file(path)})

    @_native
    def llama_tokenize(self, text: str) -> list[int]:
        """llama.cpp's own tokenization (control tokens parsed, no BOS): for parity checks."""
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    @_native
    def _reset(self) -> None:
        self._llm.reset()
        self._llm._ctx.kv_cache_clear()  # so that appending never has stale cells to remove

    @_native
    def _save(self) -> tuple[ctypes.Array, int]:
        """Sequence 0's KV cells, copied out (llama_state_seq_get_data), and its length."""
        import llama_cpp

        ctx = self._llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        if llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0) != size:
            raise SlmkitError("llama.cpp could not save a paused stream's state")
        return buf, self._llm.n_tokens

    @_native
    def _restore(self, state: tuple[ctypes.Array, int]) -> None:
        import llama_cpp

        buf, n_tokens = state
        self._reset()
        if llama_cpp.llama_state_seq_set_data(self._llm._ctx.ctx, buf, len(buf), 0) != len(buf):
            raise SlmkitError("llama.cpp could not restore a paused stream's state")
        self._llm.n_tokens = n_tokens

    @_native
    def _eval(self, ids: Sequence[int], all_logits: bool = True) -> np.ndarray:
        # One llama_decode per call (n_batch = n_ctx), asking for logits only where they are needed:
        # Llama.eval would compute the head for every prompt token and keep an n_ctx x n_vocab buffer.
        llm, n = self._llm, len(ids)
        start = llm.n_tokens
        if start + n > self.n_ctx:  # never let llama.cpp abort the process
            raise SlmkitError(f"sequence of {start + n} tokens exceeds the context of {self.n_ctx}")
        llm._batch.set_batch(batch=list(ids), n_past=start, logits_all=all_logits)
        llm._ctx.decode(llm._batch)
        llm.n_tokens += n
        vocab = llm.n_vocab()
        if all_logits:
            rows = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n * vocab,)).reshape(n, vocab)
            return np.array(rows, dtype=np.float32, copy=True)
        row = np.empty((1, vocab), np.float32)  # a plain copy: cheaper per token than wrapping the pointer
        ctypes.memmove(row.ctypes.data, llm._ctx.get_logits_ith(-1), 4 * vocab)
        return row

    @_native
    def _fork(self, n: int, prompt: Sequence[int], length: int) -> None:
        cells = -(-length // 256) * 256
        # Rebuilt for another (n, cells), never reused when larger: the result of a call must not depend
        # on the calls before it, and a larger KV buffer can change the attention's summation order.
        if self._multi is None or (self._multi.n, self._multi.cells) != (n, cells):
            self._close_multi()
            self._multi = _BatchedContext(self._llm, n, cells, max(self.n_ctx, n))
        self._multi.prefill(prompt, 0, n)

    @_native
    def _eval_batch(self, tokens: Sequence[int]) -> np.ndarray:
        return self._multi.step(range(len(tokens)), tokens)

    def _close_multi(self) -> None:
        if getattr(self, "_multi", None) is not None:
            self._multi.close()
        self._multi = None

    # continuous batching: a third context whose sequences are the slots, each at its own position
    @_native
    def _slots_open(self, n: int) -> None:
        self._slots_close()
        self._slots = _BatchedContext(self._llm, n, -(-self.n_ctx // 256) * 256, max(self.n_ctx, n))

    @_native
    def _slots_eval(self, parts: Sequence[tuple[int, Sequence[int], bool]]) -> list[np.ndarray | None]:
        return self._slots.eval(parts)

    @_native
    def _slot_free(self, slot: int) -> None:
        self._slots.forget(slot)

    @_native
    def _slots_close(self) -> None:
        if self._slots is not None:
            self._slots.close()
        self._slots = None

    @_native
    def _close(self) -> None:
        self._close_multi()
        self._slots_close()
        self._llm.close()
        self._llm = None


class _BatchedContext:
    """A second llama.cpp context holding ``n`` sequences of up to ``cells`` tokens each, decoded as one
    batch: for ``n`` candidates of one prompt (prefilled once as sequence 0, its KV cells copied to the
    others) and for continuous batching (each sequence its own prompt and position). Built from the
    binding's internals (``LlamaContext``, ``LlamaBatch``), which its public ``Llama`` class does not
    expose for several sequences."""

    def __init__(self, llm, n: int, cells: int, n_batch: int):
        import llama_cpp
        from llama_cpp import _internals
        from llama_cpp._utils import suppress_stdout_stderr

        self.n, self.cells, self.n_batch = n, cells, n_batch
        self.pos = [0] * n
        self._vocab = llm.n_vocab()
        params = llama_cpp.llama_context_default_params()
        for field in ("n_threads", "n_threads_batch", "type_k", "type_v", "flash_attn_type"):
            if hasattr(llm.context_params, field):
                setattr(params, field, getattr(llm.context_params, field))
        params.n_seq_max, params.n_ctx, params.kv_unified = n, n * cells, True  # seq_cp needs one buffer
        # Sized for any prompt the runtime accepts: a prompt longer than n_batch makes llama.cpp abort
        # the process (GGML_ASSERT n_tokens_all <= n_batch).
        params.n_batch = params.n_ubatch = n_batch
        with suppress_stdout_stderr(disable=False):  # llama.cpp logs the per-sequence context here
            self.ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self.batch = _internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=n, verbose=False)

    def prefill(self, prompt: Sequence[int], seq: int = 0, copies: int = 1) -> np.ndarray:
        """Evaluate ``prompt`` as sequence ``seq`` (what it held is dropped), copied to the next ``copies - 1``
        sequences; return the next-token logits [n_vocab]."""
        if len(prompt) > self.cells:  # never let llama.cpp abort the process
            raise SlmkitError(f"sequence of {len(prompt)} tokens exceeds the context of {self.cells}")
        for s in range(seq, seq + copies):
            self.forget(s)
        b = self.batch.batch
        b.n_tokens = len(prompt)
        for i, tok in enumerate(prompt):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, i, 1, i == len(prompt) - 1
            b.seq_id[i][0] = seq
        self.ctx.decode(self.batch)
        for s in range(seq + 1, seq + copies):
            self.ctx.kv_cache_seq_cp(seq, s, 0, len(prompt))
        for s in range(seq, seq + copies):
            self.pos[s] = len(prompt)
        return np.array(np.ctypeslib.as_array(self.ctx.get_logits_ith(len(prompt) - 1), shape=(self._vocab,)))

    def step(self, seqs: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        """Append ``tokens[i]`` to sequence ``seqs[i]``; return the [len(seqs), vocab] next-token logits."""
        return np.stack(self.eval([(seq, [tok], True) for seq, tok in zip(seqs, tokens)]))

    def eval(self, parts: Sequence[tuple[int, Sequence[int], bool]]) -> list[np.ndarray | None]:
        """One ``llama_decode`` over several sequences: each part ``(seq, ids, want)`` appends ``ids`` at the
        sequence's position; its next-token logits [vocab] are returned where ``want`` is set (llama.cpp
        computes the head for those rows only), else None."""
        total = sum(len(ids) for _, ids, _ in parts)
        if total > self.n_batch:  # never let llama.cpp abort the process
            raise SlmkitError(f"a step of {total} tokens exceeds the batch of {self.n_batch}")
        if any(self.pos[seq] + len(ids) > self.cells for seq, ids, _ in parts):
            raise SlmkitError(f"a sequence would pass the context of {self.cells} tokens")
        b = self.batch.batch
        i, rows = 0, []
        for seq, ids, want in parts:
            start = self.pos[seq]
            for k, tok in enumerate(ids):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, start + k, 1, False
                b.seq_id[i][0] = seq
                i += 1
            b.logits[i - 1] = want
            rows.append(i - 1 if want else None)
        b.n_tokens = i
        self.ctx.decode(self.batch)
        for seq, ids, _ in parts:
            self.pos[seq] += len(ids)
        return [None if r is None else np.array(np.ctypeslib.as_array(self.ctx.get_logits_ith(r), shape=(self._vocab,)))
                for r in rows]

    def forget(self, seq: int) -> None:
        """Drop a sequence's KV cells (its slot is free)."""
        self.ctx.kv_cache_seq_rm(seq, -1, -1)
        self.pos[seq] = 0

    def close(self) -> None:
        self.batch.close()
        self.ctx.close()


def _quant_name(file_type: int | None) -> str | None:
    """'q4_k_m' for llama.cpp's MOSTLY_Q4_K_M file type (None when the file does not say)."""
    import gguf

    try:
        name = gguf.LlamaFileType(int(file_type)).name
    except (TypeError, ValueError):
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_").lower()
