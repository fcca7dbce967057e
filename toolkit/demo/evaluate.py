"""Does the demo model do its task? Held-out perplexity, control following and relevance.

    python -m slmkit.demo.evaluate [MODEL] [--n 540] [--json FILE] [--card]

On held-out examples (intents never seen in training, all 27 task x length x relevance combinations
in equal numbers) it reports perplexity of the whole text and of the output given the prompt, and,
for greedy generations: how often the output has its task's format, lands in the requested length
bucket, and its relevance to the intent (share of on-topic lexicon terms) per requested bucket. The
generator's own outputs for the same prompts give the ceiling. Works on any slmkit Runtime.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from slmkit.demo.dataset import examples, relevance
from slmkit.prompts import LENGTHS, RELEVANCE, SEP, TASKS, follows_format, length_bucket
from slmkit.runtimes.base import Runtime

MAX_NEW_TOKENS = 72


def _mean(xs: list[float]) -> float:
    return float(np.mean(xs)) if xs else float("nan")


def evaluate(runtime: Runtime, n: int = 540, log_every: int = 0) -> dict:
    """Held-out figures for one runtime (n is rounded down to a multiple of 27)."""
    n = max(27, n - n % 27)
    exs = examples("eval", n)
    sep_id = runtime.tokenizer.token_to_id(SEP)
    nll_all, nll_out, tok_all, tok_out = 0.0, 0.0, 0, 0
    fmt, hit, rel = defaultdict(list), defaultdict(list), defaultdict(list)
    ceil_rel = defaultdict(list)
    outputs = []
    t0 = time.time()
    for k, e in enumerate(exs):
        ids = runtime.tokenize(e.text)
        lp = runtime.token_logprobs(ids)
        start = ids.index(sep_id)  # lp[start] is the first output token's log-prob
        nll_all -= float(lp.sum())
        tok_all += len(lp)
        nll_out -= float(lp[start:].sum())
        tok_out += len(lp) - start
        out = runtime.generate(e.prompt, max_new_tokens=MAX_NEW_TOKENS)
        outputs.append(out)
        fmt[e.task].append(follows_format(e.task, out))
        hit[e.length].append(length_bucket(out) == e.length)
        rel[e.relevance].append(relevance(e.intent, out))
        ceil_rel[e.relevance].append(relevance(e.intent, e.output))
        if log_every and (k + 1) % log_every == 0:
            print(f"  {k + 1}/{n} examples, {time.time() - t0:.0f}s", flush=True)
    return {
        "examples": n,
        "heldout_ppl": math.exp(nll_all / tok_all),
        "heldout_output_ppl": math.exp(nll_out / tok_out),
        "heldout_loss": nll_all / tok_all,
        "format_rate": {t: _mean(fmt[t]) for t in TASKS} | {"all": _mean(sum(fmt.values(), []))},
        "length_rate": {b: _mean(hit[b]) for b in LENGTHS} | {"all": _mean(sum(hit.values(), []))},
        "relevance": {b: _mean(rel[b]) for b in RELEVANCE},
        "relevance_generator": {b: _mean(ceil_rel[b]) for b in RELEVANCE},
        "distinct_outputs": len(set(outputs)) / n,
        "seconds": round(time.time() - t0, 1),
        "samples": [{"prompt": e.prompt, "output": o} for e, o in list(zip(exs, outputs))[:27:4]],
    }


def markdown(r: dict) -> str:
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    rows = [
        "| metric | value |", "|---|---|",
        f"| held-out examples (unseen intents) | {r['examples']} |",
        f"| held-out perplexity, whole text | {r['heldout_ppl']:.3f} |",
        f"| held-out perplexity, output given prompt | {r['heldout_output_ppl']:.3f} |",
        *[f"| greedy output follows the {t} format | {pct(r['format_rate'][t])} |" for t in TASKS],
        *[f"| greedy output in the requested {b} length bucket | {pct(r['length_rate'][b])} |" for b in LENGTHS],
        *[f"| relevance to intent, requested {b} (generator: {r['relevance_generator'][b]:.3f}) | "
          f"{r['relevance'][b]:.3f} |" for b in RELEVANCE],
        f"| distinct greedy outputs | {pct(r['distinct_outputs'])} |",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    from slmkit.runtimes.reference import ReferenceRuntime

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", help="GPT-2 folder (default: the demo model)")
    ap.add_argument("--n", type=int, default=540, help="held-out examples (multiple of 27)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    with ReferenceRuntime(args.model, threads=args.threads) as rt:
        print(f"evaluating {rt.info['model']} (fp16 reference) on {args.n} held-out examples", flush=True)
        r = evaluate(rt, args.n, log_every=max(27, args.n // 10))
    print(markdown(r))
    for s in r["samples"]:
        print(f"  {s['prompt']}\n    -> {s['output']}")
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
