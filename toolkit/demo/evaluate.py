"""Does the demo model do its task on intents people write? Perplexity, controls and relevance.

    python -m slmkit.demo.evaluate [MODEL] [--split eval|lexicon] [--n 540] [--json FILE] [--card]

On the shipped evaluation examples (``eval``: hand-written free-form intents none of whose words the
model saw in training; ``lexicon``: the old demo's lexicon-style held-out intents), every length x
relevance combination in equal numbers, it reports perplexity of the whole text and of the output
given the prompt, and for generated outputs: format per task, length-bucket accuracy, MiniLM relevance
cosine(intent, output) per requested relevance bucket, the share of outputs carrying a word of their
intent, repeated pieces and distinct outputs. The generator's own outputs give the ceiling. Works on
any slmkit Runtime.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from slmkit.demo.dataset import examples
from slmkit.demo.words import content_words
from slmkit.errors import run_script
from slmkit.prompts import LENGTHS, RELEVANCE, SEP, TASKS, follows_format, length_bucket
from slmkit.runtimes.base import Runtime

MAX_NEW_TOKENS = 72


def _mean(xs: list[float]) -> float:
    return float(np.mean(xs)) if xs else float("nan")


def pieces(output: str) -> list[str]:
    return [p.strip() for p in output.replace("|", ",").removeprefix("tags:").split(",") if p.strip()]


def repeats_a_piece(output: str) -> bool:
    """Whether a comma- or pipe-separated piece occurs twice (the generator never repeats one)."""
    ps = pieces(output)
    return len(ps) != len(set(ps))


def carries_intent_word(intent: str, output: str) -> bool:
    """Whether the output holds a content word of the intent (as a whole word)."""
    return bool(set(content_words(intent)) & set(content_words(output)))


def relevance_scores(scorer, intents: list[str], outputs: list[str]) -> list[float]:
    """cosine(embedding(intent), embedding(output)) per pair (0 for an empty output)."""
    emb = scorer.embed(list(intents) + list(outputs))
    a, b = emb[:len(intents)], emb[len(intents):]
    return [float(x @ y) if o.strip() else 0.0 for x, y, o in zip(a, b, outputs)]


def evaluate(runtime: Runtime, n: int = 540, log_every: int = 0, temperature: float = 0.0, top_p: float = 1.0,
             seed: int = 0, split: str = "eval", scorer=None, repetition_penalty: float = 1.0) -> dict:
    """Figures for one runtime on ``n`` examples of a split (rounded down to a multiple of 9); greedy by
    default. ``scorer``: the MiniLM scorer (loaded here when None)."""
    if scorer is None:
        from slmkit.benchmarks.task_quality import MiniLmScorer

        scorer = MiniLmScorer()
    n = max(9, n - n % 9)
    exs = examples(split, n)
    sep_id = runtime.tokenizer.token_to_id(SEP)
    nll_all, nll_out, tok_all, tok_out = 0.0, 0.0, 0, 0
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
        extra = {"repetition_penalty": repetition_penalty} if repetition_penalty != 1.0 else {}
        outputs.append(runtime.generate(e.prompt, max_new_tokens=MAX_NEW_TOKENS, temperature=temperature,
                                        top_p=top_p, seed=seed + k, **extra))
        if log_every and (k + 1) % log_every == 0:
            print(f"  {k + 1}/{n} examples, {time.time() - t0:.0f}s", flush=True)
    intents = [e.intent for e in exs]
    rel_out = relevance_scores(scorer, intents, outputs)
    rel_gen = relevance_scores(scorer, intents, [e.output for e in exs])
    fmt, hit, rel, ceil = defaultdict(list), defaultdict(list), defaultdict(list), defaultdict(list)
    for e, out, r, g in zip(exs, outputs, rel_out, rel_gen):
        fmt[e.task].append(follows_format(e.task, out))
        hit[e.length].append(length_bucket(out) == e.length)
        rel[e.relevance].append(r)
        ceil[e.relevance].append(g)
    high = [(e, o) for e, o in zip(exs, outputs) if e.relevance == "high"]
    return {
        "split": split,
        "examples": n,
        "heldout_ppl": math.exp(nll_all / tok_all),
        "heldout_output_ppl": math.exp(nll_out / tok_out),
        "heldout_loss": nll_all / tok_all,
        "format_rate": {t: _mean(fmt[t]) for t in TASKS} | {"all": _mean(sum(fmt.values(), []))},
        "length_rate": {b: _mean(hit[b]) for b in LENGTHS} | {"all": _mean(sum(hit.values(), []))},
        "relevance": {b: _mean(rel[b]) for b in RELEVANCE},
        "relevance_generator": {b: _mean(ceil[b]) for b in RELEVANCE},
        "carries_intent_word": _mean([carries_intent_word(e.intent, o) for e, o in zip(exs, outputs)]),
        "carries_intent_word_high": _mean([carries_intent_word(e.intent, o) for e, o in high]),
        "distinct_outputs": len(set(outputs)) / n,
        "repeated_piece_rate": _mean([repeats_a_piece(o) for o in outputs]),
        "decoding": {"temperature": temperature, "top_p": top_p, "seed": seed,
                     "repetition_penalty": repetition_penalty},
        "seconds": round(time.time() - t0, 1),
        "samples": [{"prompt": e.prompt, "output": o} for e, o in list(zip(exs, outputs))[:36:4]],
    }


def markdown(greedy: dict, sampled: dict | None = None) -> str:
    """A table of the figures; a second column for sampled decoding when given."""
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    cols = [greedy] + ([sampled] if sampled else [])
    head = "| metric | greedy |" + (f" sampled (T={sampled['decoding']['temperature']}, top-p "
                                    f"{sampled['decoding']['top_p']}) |" if sampled else "")

    def row(label: str, fmt, get) -> str:
        return f"| {label} | " + " | ".join(fmt(get(c)) for c in cols) + " |"

    rows = [head, "|---|---|" + ("---|" if sampled else ""),
            row("held-out examples (unseen intents)", str, lambda c: c["examples"]),
            row("held-out perplexity, whole text", lambda x: f"{x:.3f}", lambda c: c["heldout_ppl"]),
            row("held-out perplexity, output given prompt", lambda x: f"{x:.3f}", lambda c: c["heldout_output_ppl"])]
    rows += [row(f"output follows the {t} format", pct, lambda c, t=t: c["format_rate"][t]) for t in TASKS]
    rows += [row(f"output in the requested {b} length bucket", pct, lambda c, b=b: c["length_rate"][b]) for b in LENGTHS]
    rows += [row(f"relevance to intent, requested {b} (generator: {greedy['relevance_generator'][b]:.3f})",
                 lambda x: f"{x:.3f}", lambda c, b=b: c["relevance"][b]) for b in RELEVANCE]
    rows += [row("distinct outputs", pct, lambda c: c["distinct_outputs"]),
             row("outputs repeating a piece (generator: 0%)", pct, lambda c: c["repeated_piece_rate"])]
    return "\n".join(rows)


def write_card(model_dir: Path, r: dict, sampled: dict | None = None) -> Path:
    """MODEL_CARD.md of the demo model from its train_log.json and these held-out figures."""
    log = json.loads((model_dir / "train_log.json").read_text())
    cfg = json.loads((model_dir / "config.json").read_text())
    size = (model_dir / "model.safetensors").stat().st_size
    card = f"""# slmkit demo model

A small GPT-2 trained by slmkit, on a 2-core CPU, for the task of arXiv 2502.09854: turn a user intent
into a text-to-image prompt, a search query expansion or template / asset recommendation tags, under
upside-down-RL control tokens for task, output length bucket and desired relevance. It is the default
model of every slmkit command and the fp16 reference of the quality figures.

## Model
- GPT-2: {cfg['n_layer']} layers, n_embd {cfg['n_embd']}, {cfg['n_head']} heads, n_inner {cfg['n_inner']},
  context {cfg['n_positions']}, tied embedding/head; {log['params']:,} parameters.
- Weights: fp16 safetensors, {size / 2**20:.1f} MiB.
- Tokenizer: byte-level BPE (GPT-2's pre-tokenizer and byte alphabet) trained on the training split,
  {cfg['vocab_size']} tokens, with the control tokens as added special tokens:
  `<|task:t2i|> <|task:search|> <|task:recommend|> <|len:short|> <|len:medium|> <|len:long|>
  <|rel:high|> <|rel:mid|> <|rel:low|> <|out|>`; `<|endoftext|>` ends each example.
  Why not GPT-2's 50257-token vocabulary: at this width it alone would be 26M parameters (51 MB in
  fp16, over the 30 MB budget, 80% of the model) and it needs 11% more tokens per example.

## Data
`slmkit.demo.dataset`: a seeded generator of intents ("cozy cabin wallpaper": modifier x subject x
artifact, {len(intents('train')):,} training intents)
and outputs whose format, length and share of on-topic terms follow the control tokens.
{log['examples']:,} training examples ({log['train_tokens_per_epoch']:,} tokens); evaluation on intents
never seen in training (4% of all, split by a stable hash).

## Training
`python -m slmkit.demo.train --out toolkit/demo/model --layers {cfg['n_layer']} --steps {log['steps']} ...`
(seed {log['seed']}): AdamW, lr 1e-3 cosine to 1e-4, batch {log['batch_blocks']} x {log['block']} packed tokens,
{log['steps']} steps, {log['tokens_seen']:,} tokens ({log['epochs']:.2f} epochs), {log['train_seconds'] / 60:.0f} min
on {log["threads"]} CPU threads (torch {log["torch"]}). Held-out loss on packed 256-token blocks {log["held_loss_fp32"]:.4f}
(perplexity {log['held_ppl_fp32']:.3f}) in fp32 at the end of training.

## Held-out evaluation (fp16 reference)
`python -m slmkit.demo.evaluate --card` ({r['examples']} held-out examples, greedy and seeded sampling)

{markdown(r, sampled)}

Greedy decoding of a model this small falls into repeating a term; sampling, as the paper does when it
draws several candidates per intent, follows the length and relevance controls far better.
"""
    path = model_dir / "MODEL_CARD.md"
    path.write_text(card)
    return path


def main(argv: list[str] | None = None) -> None:
    from slmkit.runtimes.reference import ReferenceRuntime

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", help="GPT-2 folder (default: the demo model)")
    ap.add_argument("--n", type=int, default=540, help="held-out examples (multiple of 27)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    ap.add_argument("--greedy-only", action="store_true", help="skip the sampled-decoding pass")
    ap.add_argument("--card", action="store_true", help="(re)write the model folder's MODEL_CARD.md")
    args = ap.parse_args(argv)
    with ReferenceRuntime(args.model, threads=args.threads) as rt:
        print(f"evaluating {rt.info['model']} (fp16 reference) on {args.n} held-out examples", flush=True)
        r = evaluate(rt, args.n, log_every=max(27, args.n // 10))
        sampled = None if args.greedy_only else evaluate(rt, args.n, temperature=0.8, top_p=0.95)
    print(markdown(r, sampled))
    for s in r["samples"]:
        print(f"  {s['prompt']}\n    -> {s['output']}")
    if args.json:
        args.json.write_text(json.dumps({"greedy": r, "sampled": sampled}, indent=2) + "\n")
    if args.card:
        print(f"wrote {write_card(Path(rt.info['file']).parent, r, sampled)}")


if __name__ == "__main__":
    run_script(main)
