"""Throughput of n sampled candidates for one prompt: one batched decode against n sequential ones.

    python -m slmkit.benchmarks.candidates ARTIFACT [ARTIFACT ...] [--n 4] [--tokens 48] [--threads 2]

At batch 1, decode is bound by reading the weights; a batch reads them once for all candidates.
Backends without batched decoding (llama.cpp for now) run the candidates one after another either way.
"""
from __future__ import annotations

import argparse
import time

from slmkit.prompts import build_prompt
from slmkit.runtimes import open_runtime


def measure(path: str, n: int, tokens: int, threads: int, reps: int = 2) -> dict:
    prompt = build_prompt("cozy cabin wallpaper", "t2i", "long")
    opts = {"n": n, "temperature": 50.0, "max_new_tokens": tokens, "seed": 0}  # hot sampling: no early EOS
    with open_runtime(path, threads=threads) as rt:
        ids = rt.tokenize(prompt)
        opts["max_new_tokens"] = min(tokens, rt.n_ctx - len(ids))
        result = {"file": path, "batched_backend": rt.batched}
        for mode in ("batched", "sequential"):
            rt.batched = mode == "batched" and result["batched_backend"]
            rt.generate(prompt, **opts)  # warm-up
            best = min(_timed(rt, prompt, opts) for _ in range(reps))
            result[f"{mode}_s"] = best
            result[f"{mode}_tok_s"] = n * opts["max_new_tokens"] / best
    result["speedup"] = result["sequential_s"] / result["batched_s"]
    return result


def _timed(rt, prompt: str, opts: dict) -> float:
    t = time.perf_counter()
    rt.generate(prompt, **opts)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    print(f"| artifact | n={args.n} batched tok/s | {args.n} sequential calls tok/s | speed-up |")
    print("|---|---|---|---|")
    for path in args.artifacts:
        r = measure(path, args.n, args.tokens, args.threads)
        print(f"| {path.rsplit('/', 1)[-1]} | {r['batched_tok_s']:.0f} | {r['sequential_tok_s']:.0f} | "
              f"{r['speedup']:.2f}x{'' if r['batched_backend'] else ' (no batched decode)'} |", flush=True)


if __name__ == "__main__":
    main()
