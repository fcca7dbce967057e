"""What the Runtime wrapper costs: load, time to first token, and decode through ``Runtime.generate``
next to the library's own loop (llama-cpp-python ``Llama.eval``; onnxruntime ``session.run`` with numpy
feeds), in the same process and run, greedy, on the same prompt. A second run of the raw loop in the
wrapper's place gives the noise floor: the "overhead" two identical loops show on this machine.

    python -m devtools.overhead ARTIFACT [ARTIFACT ...] [--threads 2] [--tokens 64] [--device mobile]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from slmkit.errors import run_script
from slmkit.loader import load
from slmkit.memory import peak_rss_mb
from slmkit.profiles import get_profile
from slmkit.prompts import build_prompt

REPS = 60
PROMPT = build_prompt("vintage farmers market banner", "recommend", "long", "high")


def raw_llama(rt, ids: list[int], passes: int) -> float:
    llm = rt._llm
    t = time.perf_counter()
    llm.reset()
    llm._ctx.kv_cache_clear()
    llm.eval(ids)
    for _ in range(passes - 1):
        tok = int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))))
        llm.eval([tok])
    return time.perf_counter() - t


def raw_onnx(rt, ids: list[int], passes: int) -> float:
    sess, layers, heads, dim = rt._session, rt._layers, rt._heads, rt._head_dim
    past = {f"past_key_values.{i}.{k}": np.zeros((1, heads, 0, dim), np.float32)
            for i in range(layers) for k in ("key", "value")}
    past_names = [o.name.replace("present", "past_key_values") for o in sess.get_outputs()][1:]
    t = time.perf_counter()
    cur, n = ids, 0
    for _ in range(passes):
        feed = {"input_ids": np.array([cur], np.int64), "attention_mask": np.ones((1, n + len(cur)), np.int64),
                "position_ids": np.arange(n, n + len(cur))[None], **past}
        out = sess.run(None, feed)
        past = dict(zip(past_names, out[1:]))
        n += len(cur)
        cur = [int(np.argmax(out[0][0, -1]))]
    return time.perf_counter() - t


def wrapper_cost(rt, tokens: int, reps: int = 200) -> float:
    """Microseconds per token spent in the shared Runtime code alone: one generation's logits are
    recorded, then replayed through ``Runtime.stream`` in place of the backend (best of ``reps``)."""
    recorded: list[np.ndarray] = []
    real_eval, real_reset = rt._eval, rt._reset
    rt._eval = lambda ids, all_logits=True: recorded.append(real_eval(ids, all_logits)) or recorded[-1]
    steps = sum(1 for _ in rt.stream(PROMPT, max_new_tokens=tokens))
    replay = iter(())
    rt._eval, rt._reset = (lambda ids, all_logits=True: next(replay)), (lambda: None)
    best = float("inf")
    for _ in range(reps):
        replay = iter(recorded)
        t = time.perf_counter()
        sum(1 for _ in rt.stream(PROMPT, max_new_tokens=tokens))
        best = min(best, time.perf_counter() - t)
    rt._eval, rt._reset = real_eval, real_reset
    return 1e6 * best / steps


def measure(path: str, threads: int, tokens: int, device: str) -> dict:
    t = time.perf_counter()
    rt = load(path, device=device, threads=threads)
    load_s = time.perf_counter() - t
    ids = rt.tokenize(PROMPT)
    t = time.perf_counter()
    rt.generate(PROMPT, max_new_tokens=1)
    ttft = time.perf_counter() - t
    rt.generate(PROMPT, max_new_tokens=tokens)  # warm-up
    steps = sum(1 for _ in rt.stream(PROMPT, max_new_tokens=tokens))
    passes = steps + 1 if steps < tokens else steps  # the prompt, one per token, and the one giving EOS
    raw_loop = raw_llama if rt.info["format"] == "gguf" else raw_onnx

    def wrapped_run() -> float:
        t = time.perf_counter()
        sum(1 for _ in rt.stream(PROMPT, max_new_tokens=tokens))
        return time.perf_counter() - t

    # The raw loop runs twice per repetition: its second run ("control") sits where the wrapper sits, so
    # control against raw is what this machine's noise alone makes of two identical loops (A/A).
    runs: dict[str, list[float]] = {"wrapped": [], "raw": [], "control": []}
    loops = {"wrapped": wrapped_run, "raw": lambda: raw_loop(rt, ids, passes),
             "control": lambda: raw_loop(rt, ids, passes)}
    for rep in range(REPS):  # interleaved: wrapper, raw, control, then control, raw, wrapper
        for name in (("wrapped", "raw", "control") if rep % 2 == 0 else ("control", "raw", "wrapped")):
            runs[name].append(loops[name]())
    wrapped, raw, control = runs["wrapped"], runs["raw"], runs["control"]
    peak = peak_rss_mb()
    wrapper_us = wrapper_cost(rt, tokens)
    budget = get_profile(device).memory_budget_mb
    rt.close()
    # Noise on a shared machine only adds time: the best of many interleaved runs is the cost itself.
    w, r = min(wrapped), min(raw)
    return {"file": Path(path).name, "load_s": load_s, "ttft_ms": 1000 * ttft, "steps": steps,
            "wrapped_tok_s": steps / w, "raw_tok_s": steps / r, "overhead_pct": 100 * (w / r - 1),
            "wrapper_us_per_token": wrapper_us, "wrapper_pct": wrapper_us * steps / 1e4 / r,
            "median_overhead_pct": 100 * (float(np.median(wrapped)) / float(np.median(raw)) - 1),
            "control_pct": 100 * (min(control) / r - 1),
            "median_control_pct": 100 * (float(np.median(control)) / float(np.median(raw)) - 1),
            # each repetition's own ratio (its three runs were seconds apart), median over repetitions
            "paired_pct": 100 * (float(np.median(np.array(wrapped) / np.array(raw))) - 1),
            "paired_control_pct": 100 * (float(np.median(np.array(control) / np.array(raw))) - 1),
            "peak_rss_mb": peak, "budget_mb": budget}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    print("| artifact | load s | time to first token ms | tokens | Runtime.generate tok/s | raw loop tok/s | "
          "overhead (best / median / paired) | raw loop again, A/A (best / median / paired) | "
          "shared Runtime code µs/token (% of raw) | peak RSS MiB (budget) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in args.artifacts:
        r = measure(path, args.threads, args.tokens, args.device)
        budget = f" ({r['budget_mb']:.0f})" if r["budget_mb"] else ""
        print(f"| {r['file']} | {r['load_s']:.2f} | {r['ttft_ms']:.1f} | {r['steps']} | {r['wrapped_tok_s']:.0f} | "
              f"{r['raw_tok_s']:.0f} | {r['overhead_pct']:+.1f}% / {r['median_overhead_pct']:+.1f}% / "
              f"{r['paired_pct']:+.1f}% | {r['control_pct']:+.1f}% / {r['median_control_pct']:+.1f}% / "
              f"{r['paired_control_pct']:+.1f}% | {r['wrapper_us_per_token']:.1f} ({r['wrapper_pct']:.1f}%) | {r['peak_rss_mb']:.0f}{budget} |", flush=True)


if __name__ == "__main__":
    run_script(main)
