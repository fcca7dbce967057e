"""How much of a relevance change between two artifacts is sampling noise: many intents, paired.

    python -m devtools.relevance_noise BASE ARTIFACT [ARTIFACT ...] [--intents 216] [--candidates 4]

Each runtime samples ``--candidates`` outputs for the same seeded sample of free-form evaluation intents
with the CLI's default sampling (bench's seeds); the relevance change against BASE is printed with the
standard error of the per-intent differences. Used to check that bench's 27-intent relevance "drops"
were noise before full mode moved to 108 intents (benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse

import numpy as np

from slmkit.benchmarks.task_quality import MiniLmScorer, task_metrics
from slmkit.demo.dataset import examples
from slmkit.errors import run_script
from slmkit.loader import load
from slmkit.prompts import DECODING


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", metavar="BASE ARTIFACT")
    ap.add_argument("--intents", type=int, default=216)
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--seed", type=int, default=5, help="which intents are drawn")
    args = ap.parse_args(argv)
    exs = examples("eval", args.intents, seed=args.seed)
    scorer = MiniLmScorer()
    per_intent = {}
    for path in args.paths:
        with load(path) as rt:
            outs = [rt.generate(e.prompt, n=args.candidates, max_new_tokens=48, seed=100 * k, **DECODING)
                    for k, e in enumerate(exs)]
        m = task_metrics([e.intent for e in exs], outs, scorer)
        per_intent[path] = np.array(m["relevance_per_intent"])
        print(f"{path}: relevance {m['relevance']:.4f}", flush=True)
    base = per_intent[args.paths[0]]
    for path in args.paths[1:]:
        d = per_intent[path] - base
        print(f"{path}: change {100 * d.mean() / base.mean():+.2f}% ± {100 * d.std(ddof=1) / np.sqrt(len(d)) / base.mean():.2f}% "
              f"(one standard error, {len(d)} intents x {args.candidates} candidates)")


if __name__ == "__main__":
    run_script(main)
