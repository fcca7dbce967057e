"""What the Runtime wrapper costs: load, time to first token, and decode through ``Runtime.generate``
next to the library's own loop (llama-cpp-python ``Llama.eval``; onnxruntime ``session.run`` with numpy
feeds), in the same process and run, greedy, on the same prompt.

    python -m slmkit.benchmarks.overhead ARTIFACT [ARTIFACT ...] [--threads 2] [--tokens 64] [--device mobile]
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from slmkit.loader import load
from slmkit.profiles import get_profile
from slmkit.prompts import build_prompt

REPS = 15
PROMPT = build_prompt("vintage farmers market banner", "recommend", "long", "high")


def raw_llama(rt, ids: list[int], steps: int) -> float:
    llm = rt._llm
    t = time.perf_counter()
    llm.reset()
    llm._ctx.kv_cache_clear()
    llm.eval(ids)
    for _ in range(steps - 1):
        tok = int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))))
        llm.eval([tok])
    return time.perf_counter() - t


def raw_onnx(rt, ids: list[int], steps: int) -> float:
    sess, layers, heads, dim = rt._session, rt._layers, rt._heads, rt._head_dim
    past = {f"past_key_values.{i}.{k}": np.zeros((1, heads, 0, dim), np.float32)
            for i in range(layers) for k in ("key", "value")}
    names = ["logits"] + list(past)
    t = time.perf_counter()
    cur, n = ids, 0
    for _ in range(steps):
        feed = {"input_ids": np.array([cur], np.int64), "attention_mask": np.ones((1, n + len(cur)), np.int64),
                "position_ids": np.arange(n, n + len(cur))[None], **past}
        out = sess.run(None, feed)
        past = {name.replace("present", "past_key_values"): v
                for name, v in zip([o.name for o in sess.get_outputs()][1:], out[1:])}
        n += len(cur)
        cur = [int(np.argmax(out[0][0, -1]))]
    del names
    return time.perf_counter() - t


def measure(path: str, threads: int, tokens: int, device: str) -> dict:
    t = time.perf_counter()
    rt = load(path, device=device, threads=threads)
    load_s = time.perf_counter() - t
    ids = rt.tokenize(PROMPT)
    t = time.perf_counter()
    rt.generate(PROMPT, max_new_tokens=1)
    ttft = time.perf_counter() - t
    rt.generate(PROMPT, max_new_tokens=tokens)  # warm-up
    wrapped, raw = [], []
    for _ in range(REPS):  # interleaved, so machine noise hits both loops alike
        t = time.perf_counter()
        steps = sum(1 for _ in rt.stream(PROMPT, max_new_tokens=tokens))
        wrapped.append(time.perf_counter() - t)
        raw.append((raw_llama if rt.info["format"] == "gguf" else raw_onnx)(rt, ids, steps))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    budget = get_profile(device).memory_budget_mb
    rt.close()
    w, r = float(np.median(wrapped)), float(np.median(raw))
    return {"file": Path(path).name, "load_s": load_s, "ttft_ms": 1000 * ttft, "steps": steps,
            "wrapped_tok_s": steps / w, "raw_tok_s": steps / r, "overhead_pct": 100 * (w / r - 1),
            "peak_rss_mb": peak, "budget_mb": budget}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    print("| artifact | load s | time to first token ms | tokens | Runtime.generate tok/s | raw loop tok/s | "
          "overhead | peak RSS MiB (budget) |")
    print("|---|---|---|---|---|---|---|---|")
    for path in args.artifacts:
        r = measure(path, args.threads, args.tokens, args.device)
        budget = f" ({r['budget_mb']:.0f})" if r["budget_mb"] else ""
        print(f"| {r['file']} | {r['load_s']:.2f} | {r['ttft_ms']:.1f} | {r['steps']} | {r['wrapped_tok_s']:.0f} | "
              f"{r['raw_tok_s']:.0f} | {r['overhead_pct']:+.1f}% | {r['peak_rss_mb']:.0f}{budget} |", flush=True)


if __name__ == "__main__":
    main()
