"""Decode latency of one artifact (or model folder) in this process: bench's decode loop, nothing else.

    python -m devtools.decode PATH [--threads 2] [--reps 3] [--tokens 64]

For quick A/B comparisons of kernels and quantization settings; run it once per artifact (a fresh
process each) and alternate the runs, since this machine's speed drifts.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from slmkit.benchmarks.scenario import Scenario, measure_latency
from slmkit.demo.dataset import examples
from slmkit.errors import run_script
from slmkit.loader import load


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args(argv)
    sc = Scenario(threads=args.threads, greedy_prompts=[examples("eval", 1)[0].prompt], reps=args.reps,
                  decode_tokens=args.tokens, candidates=1)
    with load(args.path, threads=args.threads, verify=False) as rt:
        r = measure_latency(rt, sc)
    print(f"{Path(args.path).name}: decode {r['decode_ms_p50']:.2f} ms/token p50, {r['decode_tok_s']:.0f} tok/s "
          f"({args.threads} threads, {r['decode_steps']} steps after a {r['decode_context']}-token context)")


if __name__ == "__main__":
    run_script(main)
