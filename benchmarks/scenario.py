"""What ``slmkit bench`` measures on one artifact, inside the process that loaded it.

The same :class:`Scenario` (prompts, token ids, settings) runs on the fp16 reference and on every
artifact, through ``slmkit.load`` and the Runtime protocol only. Order matters: memory and latency are
measured first, then the generations for the task-level metrics, and the peak RSS is read before the
scoring pass (whose comparison with the reference's logits would otherwise count as the runtime's).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from slmkit.metrics import nll, summarize_drift, token_drift
from slmkit.memory import current_rss_mb, peak_rss_mb
from slmkit.prompts import DECODING


@dataclass
class Scenario:
    device: str = "cpu"
    threads: int | None = None
    verify: bool = True
    text_ids: list[list[int]] = field(default_factory=list)  # scored by every runtime, same ids
    greedy_prompts: list[str] = field(default_factory=list)
    greedy_tokens: int = 32
    sample_prompts: list[str] = field(default_factory=list)
    candidates: int = 4
    sample_tokens: int = 48
    sampling: dict = field(default_factory=lambda: dict(DECODING))  # the CLI's default sampling
    seed: int = 0
    prompt_lengths: tuple[int, ...] = (32, 128)
    decode_tokens: int = 64
    reps: int = 3
    batch_tokens: int = 32

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Scenario":
        return cls(**{**data, "prompt_lengths": tuple(data["prompt_lengths"])})


def _ms(xs: list[float]) -> float:
    return 1000 * float(np.median(xs))


def measure_latency(rt, sc: Scenario) -> dict:
    """Time to first token, prefill tok/s per prompt length, decode per-token p50/p95, n-candidate
    throughput. The first repetition of each is a warm-up."""
    rng = np.random.default_rng(0)
    vocab = rt.tokenizer.vocab_size

    def random_ids(n: int) -> list[int]:
        return [int(i) for i in rng.integers(0, vocab, n)]

    def timed(fn) -> list[float]:
        out = []
        for rep in range(sc.reps + 1):
            t = time.perf_counter()
            fn()
            if rep:
                out.append(time.perf_counter() - t)
        return out

    prompt = sc.greedy_prompts[0]
    result: dict = {"ttft_ms": _ms(timed(lambda: rt.generate(prompt, max_new_tokens=1)))}
    prefill = {}
    for n in sorted({min(n, rt.n_ctx - 1) for n in sc.prompt_lengths}):
        ids = random_ids(n)

        def run_prefill() -> None:
            rt._reset()
            rt._eval(ids, all_logits=False)

        prefill[str(n)] = n / (float(np.median(timed(run_prefill))))
    result["prefill_tok_s"] = prefill

    start = min(128, rt.n_ctx // 2)
    steps_n = max(1, min(sc.decode_tokens, rt.n_ctx - start - 1))
    context = random_ids(start)
    steps: list[float] = []

    def run_decode() -> None:
        rt._reset()
        logits = rt._eval(context, all_logits=False)[-1]
        for _ in range(steps_n):
            t = time.perf_counter()
            logits = rt._eval([int(np.argmax(logits))], all_logits=False)[-1]
            steps.append(time.perf_counter() - t)

    run_decode()  # warm-up
    steps.clear()
    for _ in range(sc.reps):
        run_decode()
    d = np.array(steps) * 1000
    result.update(decode_context=start, decode_steps=steps_n * sc.reps, decode_ms_p50=float(np.median(d)),
                  decode_ms_p95=float(np.percentile(d, 95)), decode_tok_s=float(len(d) / d.sum() * 1000))
    if sc.candidates > 1:
        result.update(_candidates_throughput(rt, sc, timed))
    return result


def _candidates_throughput(rt, sc: Scenario, timed) -> dict:
    """n sampled candidates for one prompt as one batched call, against a single sequence."""
    prompt = sc.sample_prompts[0] if sc.sample_prompts else sc.greedy_prompts[0]
    tokens = min(sc.batch_tokens, rt.n_ctx - len(rt.tokenize(prompt)) - 1)
    hot = {"temperature": 50.0, "max_new_tokens": tokens, "seed": 0}  # near-uniform: no early end-of-text
    one = float(np.median(timed(lambda: rt.generate(prompt, **hot))))
    many = float(np.median(timed(lambda: rt.generate(prompt, n=sc.candidates, **hot))))
    single, batched = tokens / one, sc.candidates * tokens / many
    return {"candidates": sc.candidates, "batched_decode": bool(rt.batched), "single_tok_s": single,
            "candidates_tok_s": batched, "candidates_speedup": batched / single}


def generate_outputs(rt, sc: Scenario) -> dict:
    greedy = [rt.generate(p, max_new_tokens=sc.greedy_tokens) for p in sc.greedy_prompts]
    sampled = []
    for k, p in enumerate(sc.sample_prompts):
        out = rt.generate(p, n=sc.candidates, max_new_tokens=sc.sample_tokens, seed=sc.seed + 100 * k, **sc.sampling)
        sampled.append([out] if isinstance(out, str) else out)
    return {"greedy": greedy, "sampled": sampled}


def reserve(fd: int, size: int) -> None:
    """Allocate a file's blocks now (posix_fallocate where the OS has it; elsewhere, macOS and Windows,
    write a zero byte at every 4 KiB so that a full disk fails here, not mid-way through a mapping)."""
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, size)
        return
    for pos in range(0, size, 4096):
        os.lseek(fd, pos, os.SEEK_SET)
        os.write(fd, b"\0")


def score_texts(rt, text_ids: list[list[int]], reference: Path | None, write: Path | None) -> dict:
    """Perplexity of the texts and, given the reference's logits, drift against them. ``write`` stores
    this runtime's logits (the reference's run), rows concatenated over the texts."""
    vocab = rt.tokenizer.vocab_size
    total = sum(len(ids) for ids in text_ids)
    out = np.lib.format.open_memmap(write, mode="w+", dtype=np.float32, shape=(total, vocab)) if write else None
    if write:  # reserve the blocks: a full disk fails here with ENOSPC, not with SIGBUS while writing the map
        with open(write, "r+b") as f:
            reserve(f.fileno(), os.fstat(f.fileno()).st_size)
    ref = np.load(reference, mmap_mode="r") if reference else None
    loss, count, offset, drift = 0.0, 0, 0, []
    for ids in text_ids:
        logits = rt.score(ids)[:, :vocab]
        loss += nll(logits, ids)
        count += len(ids) - 1
        rows = slice(offset, offset + len(ids))
        if out is not None:
            out[rows] = logits
        if ref is not None:
            drift.append(token_drift(np.asarray(ref[rows]), logits, ids))
        offset += len(ids)
    if out is not None:
        out.flush()
    drift_stats = summarize_drift(drift) if drift else {}
    drift_stats.pop("tokens", None)  # positions compared; "tokens" below counts the tokens predicted
    return {"tokens": count, "ppl": math.exp(loss / count), **drift_stats}


def run_scenario(path: str | None, sc: Scenario, reference_logits: Path | None = None,
                 write_logits: Path | None = None) -> dict:
    """Everything bench records for one artifact (or, with ``path`` a model folder, the reference)."""
    from slmkit.loader import load
    from slmkit.profiles import get_profile

    t = time.perf_counter()
    rt = load(path, device=sc.device, threads=sc.threads, verify=sc.verify)
    load_s = time.perf_counter() - t
    memory = {"load_s": load_s, "rss_after_load_mb": current_rss_mb()}
    with rt:
        latency = measure_latency(rt, sc)
        outputs = generate_outputs(rt, sc)
        memory["peak_rss_mb"] = peak_rss_mb()
        quality = score_texts(rt, sc.text_ids, reference_logits, write_logits)
        info = {k: v for k, v in rt.info.items() if k not in ("peak_rss_mb", "warnings")}
    budget = get_profile(sc.device).memory_budget_mb
    memory.update(budget_mb=budget, within_budget=None if not budget else memory["peak_rss_mb"] <= budget)
    return {"info": info, "memory": memory, "latency": latency, "quality": quality, "outputs": outputs}
