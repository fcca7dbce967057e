"""Does the demo model do its task on intents people write? Perplexity, controls and relevance.

    python -m slmkit.demo.evaluate [MODEL] [--n 540] [--json FILE] [--card]
    python -m slmkit.demo.evaluate [MODEL] --set typed|everyday [--json FILE]

On the shipped evaluation examples (``eval``: hand-written free-form intents none of whose words the
model saw in training; ``lexicon``: the old demo's lexicon-style held-out intents), every length x
relevance combination in equal numbers, it reports perplexity of the whole text and of the output
given the prompt, and for generated outputs: format per task, length-bucket accuracy, MiniLM relevance
cosine(intent, output) per requested relevance bucket, the share of outputs carrying a word of their
intent, repeated pieces and distinct outputs. The generator's own outputs give the ceiling. ``--set``
asks a hand-written set directly instead (typed: capitals, codes, accents; everyday: the lower-case requests
people type most) and lists every output that does not hold its intent as typed. Works on any slmkit Runtime.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from slmkit.demo.dataset import NEAR_MIN, OUTPUT_FORM, examples, pieces
from slmkit.demo.intents import (ACCENTS_WIDE, ANY_WORD_ACCENT, DESCRIPTOR_SHARE, EVERYDAY_SHARE, PSEUDO_SHARE,
                                 RARE_SHARE)
from slmkit.demo.words import DESCRIPTOR_ADJECTIVES, OFF_TOPIC, content_words, everyday_intents, typed_intents
from slmkit.errors import run_script
from slmkit.prompts import (DECODING, LENGTHS, RELEVANCE, SEP, TASKS, build_prompt, follows_format, length_bucket,
                            output_text)
from slmkit.runtimes.base import Runtime

MAX_NEW_TOKENS = 72


def _mean(xs: list[float]) -> float:
    return float(np.mean(xs)) if xs else float("nan")


def repeats_a_piece(output: str) -> bool:
    """Whether a comma- or pipe-separated piece occurs twice (the generator never repeats one)."""
    ps = pieces(output)
    return len(ps) != len(set(ps))


def carries_intent_word(intent: str, output: str) -> bool:
    """Whether the output holds a content word of the intent (as a whole word)."""
    return bool(set(content_words(intent)) & set(content_words(output)))


def carries_every_intent_word(intent: str, output: str) -> bool:
    """Whether the output holds every content word of the intent, each spelled exactly: a copy that
    garbles one word ("an aastronaut") fails, where :func:`carries_intent_word` still passes it."""
    words = set(content_words(intent))
    return bool(words) and words <= set(content_words(output))


def descriptor_pairs(outputs: list[str]) -> list[tuple[str, str]]:
    """The "adjective noun" pieces of outputs whose adjective is a descriptor adjective ("misty harbor")."""
    adjs = set(DESCRIPTOR_ADJECTIVES)
    return [(w[0], w[1]) for o in outputs for p in pieces(o) if len(w := p.split()) == 2 and w[0] in adjs]


def descriptor_coherence(scorer, outputs: list[str]) -> dict:
    """How the outputs' "adjective noun" descriptors read: the share whose adjective fits the noun's kind
    (``ADJECTIVE_FITS``; the kind judged by MiniLM against ``NOUN_KINDS``, as the training data pairs them:
    "paper toothpaste" and "juicy prey" do not fit), and the most used adjective's share of them."""
    from slmkit.demo.dataset import noun_kinds
    from slmkit.demo.words import ADJECTIVE_KINDS

    pairs = descriptor_pairs(outputs)
    if not pairs:
        return {"pairs": 0, "fit_rate": float("nan"), "top_adjective": None, "top_adjective_share": float("nan")}
    nouns = sorted({n for _, n in pairs})
    kind = dict(zip(nouns, noun_kinds(scorer.embed, scorer.embed(nouns))[0]))
    top, count = Counter(a for a, _ in pairs).most_common(1)[0]
    return {"pairs": len(pairs), "fit_rate": _mean([kind[n] in ADJECTIVE_KINDS[a] for a, n in pairs]),
            "top_adjective": top, "top_adjective_share": count / len(pairs)}


def relevance_scores(scorer, intents: list[str], outputs: list[str]) -> list[float]:
    """cosine(embedding(intent), embedding(output)) per pair (0 for an empty output)."""
    emb = scorer.embed(list(intents) + list(outputs))
    a, b = emb[:len(intents)], emb[len(intents):]
    return [float(x @ y) if o.strip() else 0.0 for x, y, o in zip(a, b, outputs)]


def evaluate(runtime: Runtime, n: int = 540, log_every: int = 0, decoding: dict | None = None,
             candidates: int = 1, seed: int = 0, split: str = "eval", scorer=None) -> dict:
    """Figures for one runtime on ``n`` examples of a split (rounded down to a multiple of 27).
    ``decoding``: generate() sampling arguments (greedy when None); ``candidates`` outputs per example
    (seeds ``seed + k * candidates + i``), all counted. ``scorer``: the MiniLM scorer (loaded when None)."""
    if scorer is None:
        from slmkit.benchmarks.task_quality import MiniLmScorer

        scorer = MiniLmScorer()
    decoding = dict(decoding or {"temperature": 0.0})
    n = max(27, n - n % 27)
    exs = examples(split, n)
    sep_id = runtime.tokenizer.token_to_id(SEP)
    nll_all, nll_out, tok_all, tok_out = 0.0, 0.0, 0, 0
    pairs: list[tuple] = []  # (example, output)
    t0 = time.time()
    for k, e in enumerate(exs):
        ids = runtime.tokenize(e.text)
        lp = runtime.token_logprobs(ids)
        start = ids.index(sep_id)  # lp[start] is the first output token's log-prob
        nll_all -= float(lp.sum())
        tok_all += len(lp)
        nll_out -= float(lp[start:].sum())
        tok_out += len(lp) - start
        outs = runtime.generate(e.prompt, n=candidates, max_new_tokens=MAX_NEW_TOKENS, seed=seed + k * candidates,
                                **decoding)
        pairs += [(e, output_text(o)) for o in ([outs] if isinstance(outs, str) else outs)]
        if log_every and (k + 1) % log_every == 0:
            print(f"  {k + 1}/{n} examples, {time.time() - t0:.0f}s", flush=True)
    outputs = [o for _, o in pairs]
    rel_out = relevance_scores(scorer, [e.intent for e, _ in pairs], outputs)
    rel_gen = relevance_scores(scorer, [e.intent for e in exs], [e.output for e in exs])
    fmt, hit, rel, ceil = defaultdict(list), defaultdict(list), defaultdict(list), defaultdict(list)
    for (e, out), r in zip(pairs, rel_out):
        fmt[e.task].append(follows_format(e.task, out))
        hit[e.length].append(length_bucket(out) == e.length)
        rel[e.relevance].append(r)
    for e, g in zip(exs, rel_gen):
        ceil[e.relevance].append(g)
    high = [(e, o) for e, o in pairs if e.relevance == "high"]
    return {
        "split": split,
        "examples": n,
        "candidates": len(pairs),
        "heldout_ppl": math.exp(nll_all / tok_all),
        "heldout_output_ppl": math.exp(nll_out / tok_out),
        "heldout_loss": nll_all / tok_all,
        "format_rate": {t: _mean(fmt[t]) for t in TASKS} | {"all": _mean(sum(fmt.values(), []))},
        "length_rate": {b: _mean(hit[b]) for b in LENGTHS} | {"all": _mean(sum(hit.values(), []))},
        "relevance": {b: _mean(rel[b]) for b in RELEVANCE},
        "relevance_generator": {b: _mean(ceil[b]) for b in RELEVANCE},
        "carries_intent_word": _mean([carries_intent_word(e.intent, o) for e, o in pairs]),
        "carries_intent_word_high": _mean([carries_intent_word(e.intent, o) for e, o in high]),
        "carries_every_intent_word_high": _mean([carries_every_intent_word(e.intent, o) for e, o in high]),
        "generator_carries_every_intent_word_high": _mean([carries_every_intent_word(e.intent, e.output)
                                                           for e in exs if e.relevance == "high"]),
        "distinct_outputs": len(set(outputs)) / len(outputs),
        "repeated_piece_rate": _mean([repeats_a_piece(o) for o in outputs]),
        "descriptors": descriptor_coherence(scorer, outputs),
        "decoding": decoding | {"seed": seed, "candidates": candidates},
        "seconds": round(time.time() - t0, 1),
        "samples": [{"prompt": e.prompt, "output": o} for e, o in pairs[:36 * candidates:4 * candidates]],
    }


def _capital_first(rows: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return [(task, intent[:1].upper() + intent[1:]) for task, intent in rows]


# The hand-written intent sets asked directly (no shipped examples): name -> (what they are, (task, intent) rows)
INTENT_SETS = {
    "typed": ("typed intents", typed_intents),
    "everyday": ("everyday intents", everyday_intents),
    "everyday, capital first letter": ("everyday intents, capital first letter",
                                       lambda: _capital_first(everyday_intents())),
}
SET_GROUPS = {"typed": ("typed",), "everyday": ("everyday", "everyday, capital first letter")}


def set_figures(runtime: Runtime, decoding: dict, name: str = "typed", candidates: int = 4, seed: int = 0,
                scorer=None) -> dict:
    """One hand-written intent set (``INTENT_SETS``: typed with capitals, codes, accents and punctuation;
    everyday lower-case requests), each intent asked for high relevance and medium length, ``candidates``
    sampled outputs each: MiniLM relevance, the share carrying a word of the intent, every word
    (case-folded), the whole intent exactly as typed, and outputs with a broken character (U+FFFD: tokens
    that do not decode as UTF-8). ``misses`` lists the outputs that do not hold their intent as typed."""
    if scorer is None:
        from slmkit.benchmarks.task_quality import MiniLmScorer

        scorer = MiniLmScorer()
    label, read_rows = INTENT_SETS[name]
    rows = read_rows()
    pairs: list[tuple[str, str]] = []
    t0 = time.time()
    for k, (task, intent) in enumerate(rows):
        outs = runtime.generate(build_prompt(intent, task, "medium", "high"), n=candidates,
                                max_new_tokens=MAX_NEW_TOKENS, seed=seed + k * candidates, **decoding)
        pairs += [(intent, output_text(o)) for o in ([outs] if isinstance(outs, str) else outs)]
    rel = relevance_scores(scorer, [i for i, _ in pairs], [o for _, o in pairs])
    return {"set": label, "intents": len(rows), "candidates": len(pairs), "relevance_high": _mean(rel),
            "carries_intent_word": _mean([carries_intent_word(i, o) for i, o in pairs]),
            "carries_every_intent_word": _mean([carries_every_intent_word(i, o) for i, o in pairs]),
            "copies_as_typed": _mean([i in o for i, o in pairs]),
            "broken_characters": _mean(["\ufffd" in o for _, o in pairs]),
            "repeated_piece_rate": _mean([repeats_a_piece(o) for _, o in pairs]),
            "decoding": decoding | {"seed": seed, "candidates": candidates}, "seconds": round(time.time() - t0, 1),
            "samples": [{"intent": i, "output": o} for i, o in pairs[::candidates]],
            "misses": [{"intent": i, "output": o} for i, o in pairs if i not in o]}


def copy_probabilities(runtime: Runtime, rows: list[tuple[str, str]], weak: float = 0.5) -> dict:
    """How surely the model copies each intent (high relevance, medium length): teacher-forced, the
    probability of each of the intent's tokens as the output's opening piece, given the prompt and the
    intent's earlier tokens. Sampling at the CLI's temperature swaps a token given under ``weak`` for a near
    word often ("cabin in the snowy avenues"); per intent, its least sure token. Seconds, no sampling."""
    per_intent = []
    for task, intent in rows:
        prompt, opening = build_prompt(intent, task, "medium", "high"), OUTPUT_FORM[task][0]  # "tags: " first
        ids = runtime.tokenize(f"{prompt} {opening}{intent}")
        # the intent's first token: after the prompt and the opening (lp[k] is the log-prob of ids[k + 1])
        first = len(runtime.tokenize(f"{prompt} {opening}".rstrip()))
        probs = np.exp(runtime.token_logprobs(ids)[first - 1:])
        k = int(np.argmin(probs))
        per_intent.append({"intent": intent, "least": float(probs[k]),
                           "token": runtime.tokenizer.decode([ids[first + k]])})
    return {"sure_share": _mean([r["least"] >= weak for r in per_intent]), "weak": weak,
            "mean_least": _mean([r["least"] for r in per_intent]),
            "intents": sorted(per_intent, key=lambda r: r["least"])}


def set_markdown(fig: dict) -> str:
    return "\n".join([
        f"| {fig['set']} ({fig['intents']} x {fig['candidates'] // fig['intents']} sampled, high relevance) | |",
        "|---|---|",
        f"| relevance (MiniLM cosine) | {fig['relevance_high']:.3f} |",
        f"| carries a word of its intent | {100 * fig['carries_intent_word']:.1f}% |",
        f"| carries every word of its intent (case-folded) | {100 * fig['carries_every_intent_word']:.1f}% |",
        f"| holds the intent exactly as typed | {100 * fig['copies_as_typed']:.1f}% |",
        f"| holds a broken character (U+FFFD) | {100 * fig['broken_characters']:.1f}% |",
        f"| repeats a piece | {100 * fig['repeated_piece_rate']:.1f}% |"]
        + ([f"| every intent token copied at p >= {fig['copy']['weak']:g} (teacher-forced) | "
            f"{100 * fig['copy']['sure_share']:.1f}% |"] if "copy" in fig else []))


def markdown(cols: dict[str, dict]) -> str:
    """A table of the figures, one column per (split, decoding) result."""
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    runs = list(cols.values())
    head = "| metric | " + " | ".join(cols) + " |"

    def row(label: str, fmt, get) -> str:
        return f"| {label} | " + " | ".join(fmt(get(c)) for c in runs) + " |"

    rows = [head, "|---|" + "---|" * len(cols),
            row("examples / outputs scored", str, lambda c: f"{c['examples']} / {c.get('candidates', c['examples'])}"),
            row("perplexity, whole text", lambda x: f"{x:.2f}", lambda c: c["heldout_ppl"]),
            row("perplexity, output given prompt", lambda x: f"{x:.2f}", lambda c: c["heldout_output_ppl"])]
    rows += [row(f"relevance (MiniLM cosine), requested {b}", lambda x: f"{x:.3f}",
                 lambda c, b=b: c["relevance"][b]) for b in RELEVANCE]
    rows += [row(f"relevance of the generator's own outputs, {b}", lambda x: f"{x:.3f}",
                 lambda c, b=b: c["relevance_generator"][b]) for b in RELEVANCE]
    rows += [row("carries a word of its intent (all / requested high)", lambda x: x,
                 lambda c: f"{pct(c['carries_intent_word'])} / {pct(c['carries_intent_word_high'])}")]
    rows += [row("carries every word of its intent, spelled exactly (requested high; the generator's own)",
                 lambda x: x, lambda c: f"{pct(c['carries_every_intent_word_high'])} "
                 f"({pct(c['generator_carries_every_intent_word_high'])})" if "carries_every_intent_word_high" in c
                 else "-")]
    rows += [row(f"follows the {t} format", pct, lambda c, t=t: c["format_rate"][t]) for t in TASKS]
    rows += [row(f"in the requested {b} length bucket", pct, lambda c, b=b: c["length_rate"][b]) for b in LENGTHS]
    rows += [row("distinct outputs", pct, lambda c: c["distinct_outputs"]),
             row("repeats a piece (generator: 0%)", pct, lambda c: c["repeated_piece_rate"]),
             row("adjective-noun descriptors whose adjective fits the noun's kind", lambda x: x,
                 lambda c: f"{pct(c['descriptors']['fit_rate'])} of {c['descriptors']['pairs']}"
                 if "descriptors" in c else "-"),
             row("most used descriptor adjective (share)", lambda x: x,
                 lambda c: f"{c['descriptors']['top_adjective']} ({pct(c['descriptors']['top_adjective_share'])})"
                 if "descriptors" in c else "-")]
    return "\n".join(rows)


GREEDY = DECODING | {"temperature": 0.0}  # `slmkit generate --temperature 0`: the other rules still apply
CANDIDATES = 4  # sampled outputs per example, as the paper draws several candidates per intent
BARS = {"relevance_ratio": 0.9, "carries_word": 0.95, "repeats": 0.05, "margin": 0.08}


def run_all(runtime: Runtime, n: int, rules: dict[str, float | int] | None = None, log_every: int = 0,
            candidates: int = CANDIDATES) -> dict[str, dict]:
    """Free-form and lexicon-style splits, greedy (one output; the CLI's defaults at temperature 0) and
    sampled (``candidates`` outputs per example) with the CLI's default sampling; ``rules`` overrides
    the repetition rules of both (``presence_penalty``, ``no_repeat_ngram``: measuring them)."""
    rules = rules or {}
    from slmkit.benchmarks.task_quality import MiniLmScorer

    scorer = MiniLmScorer()
    out = {}
    for split in ("eval", "lexicon"):
        name = "free-form" if split == "eval" else "lexicon-style"
        out[f"{name}, greedy"] = evaluate(runtime, n, log_every, split=split, scorer=scorer,
                                          decoding=GREEDY | rules)
        out[f"{name}, sampled"] = evaluate(runtime, n, log_every, split=split, scorer=scorer, candidates=candidates,
                                           decoding=DECODING | rules)
    return out


def bars(cols: dict[str, dict]) -> list[tuple[str, bool]]:
    """The issue's bars on the sampled free-form figures, each as (what was measured, met)."""
    free, lex = cols["free-form, sampled"], cols["lexicon-style, sampled"]
    ratio = free["relevance"]["high"] / lex["relevance"]["high"]
    rel, m = free["relevance"], BARS["margin"]
    return [
        (f"relevance (high) {rel['high']:.3f} free-form vs {lex['relevance']['high']:.3f} lexicon-style: "
         f"{100 * ratio:.0f}% (bar: >= {100 * BARS['relevance_ratio']:.0f}%)", ratio >= BARS["relevance_ratio"]),
        (f"carries a word of its intent (high): {100 * free['carries_intent_word_high']:.1f}% "
         f"(bar: >= {100 * BARS['carries_word']:.0f}%)", free["carries_intent_word_high"] >= BARS["carries_word"]),
        (f"repeats a piece: {100 * free['repeated_piece_rate']:.1f}% (bar: <= {100 * BARS['repeats']:.0f}%)",
         free["repeated_piece_rate"] <= BARS["repeats"]),
        (f"relevance high {rel['high']:.3f} > mid {rel['mid']:.3f} > low {rel['low']:.3f} "
         f"(bar: margins >= {m})", rel["high"] - rel["mid"] >= m and rel["mid"] - rel["low"] >= m),
    ]


DATA_MINUTES_PER_10K = 1.2  # generating training data, measured: 240,000 examples in 29 min on the 2-core CPU


def _generator_extras(version: int) -> str:
    """The card's sentence for what generators 12 and on add to the intents (14: typed punctuation; 15: off-topic
    pieces from a short list)."""
    if version < 12:
        return ""
    accents = sum(map(len, ACCENTS_WIDE.values()))
    return (f" People's words too: a noun slot takes a common concrete noun {100 * EVERYDAY_SHARE:.0f}% of the time "
            f"(\"mountain\", \"cabin\") and an adjective slot a descriptor adjective {100 * DESCRIPTOR_SHARE:.0f}% "
            f"(\"snowy\"), so such words are copied, not completed; typed intents take {accents} accented letters, "
            f"on any word in {100 * ANY_WORD_ACCENT[version]:.0f}% of accent typings"
            + ("; and prices, percentages, abbreviations and quoted names (\"under $1200\", \"30% off\", \"Prof.\")."
               if version >= 14 else ".")
            + (f" Off-topic pieces (of mid and low outputs) are everyday errands from a short list per task, "
               f"{sum(map(len, OFF_TOPIC.values()))} in all (\"{OFF_TOPIC['recommend'][0]}\", "
               f"\"{OFF_TOPIC['search'][0]}\"), those far from the intent, so that sampling keeps them; no high-relevance "
               "example carries one." if version >= 15 else ""))


def _recipe_extras(log: dict) -> str:
    """The card's sentences for the training options a run used (a fine-tune's start, copy drills, sparse
    embedding updates)."""
    out = ""
    if log.get("init"):
        base = log["init"]
        out += (f" This run fine-tunes an earlier one, whose weights (SHA-256 {base['sha256'][:12]}...) and tokenizer it "
                f"starts from: `{base['command']}` (generator {base['generator_version']}, {base['examples']:,} examples, "
                f"{base['steps']} steps).")
    if log.get("reset_drifted_rows"):
        out += (f" Before it, the {log['reset_drifted_rows']} embedding rows that had drifted into one shared direction "
                "(rows of rarely seen tokens: accented letters' bytes, \".\", \"$\", \"%\") were re-drawn at the "
                "initialiser's scale, so the model can tell them apart when it copies them.")
    if log["data"].get("label_margin"):
        out += (f" Examples whose measured reward lies within {log['data']['label_margin']:g} of a relevance bucket "
                f"boundary (0.35, 0.65) were left out ({log['data']['left_out_near_boundaries']:,} of them), so each "
                "relevance token stands for clearly different relevance.")
    if log["data"].get("copy_drills"):
        out += (f" Copy drills (share {log['data']['copy_drills']:g}): in {log['data']['drilled_texts']:,} texts one "
                "copied intent word became a made-up word of rarely seen tokens, in the intent and every copy.")
    if log.get("sparse_embeddings"):
        out += (" Sparse embedding updates: a token's embedding row changes only in steps whose batch holds the "
                "token, so rows of rarely seen tokens stay apart instead of all drifting one way.")
    return out


def _start_time(log: dict) -> str:
    """A fine-tune's training time with the run it started from counted too (the card's budget sentence)."""
    base = (log.get("init") or {}).get("train_seconds")
    return f"; with the run it started from ({base} s), {log['train_seconds'] + base} s in all" if base else ""


def write_card(model_dir: Path, cols: dict[str, dict], extra: str = "") -> Path:
    """MODEL_CARD.md of the demo model from its train_log.json and these evaluation figures."""
    log = json.loads((model_dir / "train_log.json").read_text())
    cfg = json.loads((model_dir / "config.json").read_text())
    size = (model_dir / "model.safetensors").stat().st_size
    tok = log["tokenizer"]
    labels = log["data"]["relevance_labels"]
    emb = cfg["vocab_size"] * cfg["n_embd"]
    decoding = next(iter(cols.values()))["decoding"]
    sampled = cols["free-form, sampled"]["decoding"]
    card = f"""# slmkit demo model

A small GPT-2 trained by slmkit for the task of arXiv 2502.09854: turn a user's intent, in their own
words, into a text-to-image prompt, a search query expansion or template / asset recommendation tags,
under upside-down-RL control tokens for task, output length bucket and desired relevance. It is the
default model of every slmkit command and the fp16 reference of the quality figures.

## Model
- GPT-2: {cfg['n_layer']} layers, n_embd {cfg['n_embd']}, {cfg['n_head']} heads, n_inner {cfg['n_inner']},
  context {cfg['n_positions']}, tied embedding/head; {log['params']:,} parameters.
- Weights: fp16 safetensors, {size / 2**20:.1f} MiB.
- Tokenizer: byte-level BPE (GPT-2's pre-tokenizer and byte alphabet) trained on the training texts,
  {cfg['vocab_size']} tokens, with the control tokens as added special tokens:
  `<|task:t2i|> <|task:search|> <|task:recommend|> <|len:short|> <|len:medium|> <|len:long|>
  <|rel:high|> <|rel:mid|> <|rel:low|> <|out|>`; `<|endoftext|>` ends each example.
  Why {cfg['vocab_size']}: the embedding is then {100 * emb / log['params']:.0f}% of the weights (31% in the
  124M GPT-2, whose quantization behaviour the demo should share; GPT-2's own 50257 tokens would be 80% at
  this width and 3-4x slower to train). Words of the free-form evaluation intents, none of them seen in
  training, take {tok['freeform_tokens_per_word']} tokens each. A seeded fifth of the training texts has half
  its words cut at a random letter (a deterministic BPE dropout; a word is cut at the same place throughout
  its text, so an output copies the intent's very tokens), so the pieces an unseen word breaks into were
  all trained: {tok['tokens_never_in_training']} of {tok['vocab']} tokens never occur in the training ids.
- Prompt: `<|task:t2i|><|len:medium|><|rel:high|> INTENT<|out|>`; the model writes ` OUTPUT<|endoftext|>`.
  The intent and the output each open with a space, so the intent's words are the same tokens wherever
  the output copies them (`slmkit.prompts.output_text` drops the output's space).

## Data
`slmkit.demo.dataset` (generator version {log['data']['generator_version']}, seed {log['data']['data_seed']}):
{log['intents']:,} open-world intents of 2-9 words over broad English ("wonderwords" part-of-speech lists
and "wordfreq"'s 150k commonest words; a noun or adjective slot takes a rare word {100 * RARE_SHARE:.0f}% and a
made-up word {100 * PSEUDO_SHARE:.0f}% of the time, so the model must copy words rather than recall them; brand-like
names), most of the rest built around an anchor noun and its MiniLM neighbours; {log['examples']:,} examples ({log['train_tokens_per_epoch']:,} tokens).{_generator_extras(log['data']['generator_version'])}
Outputs copy the intent's words (a t2i prompt opens with the intent as written, no article put before it)
and add descriptors that all-MiniLM-L6-v2 ranks nearest to the intent's known words: rare, made-up and
brand-like words, a few times in the data each, are left out of the ranking. Only clearly near ones are kept
(cosine at least {NEAR_MIN}), mixed with pieces that fit any subject (qualities, search refinements, asset tags),
which an intent of unknown words only gets, so the model learns to answer a word it does not know with pieces
that fit anything rather than arbitrary ones (off-topic descriptors are far from the whole intent). The
intent is copied once, as the first piece, and never again. Descriptors are concrete nouns (nearer MiniLM's concrete anchors than its
abstract ones, none near an unpleasant word), alone or paired with one of {len(DESCRIPTOR_ADJECTIVES)} adjectives people put in
prompts (colour, material, texture, light, season, era, a pleasant mood) chosen by relatedness to the noun;
the broad adjective pool stays in intents. The relevance control token is the bucket of the output's *measured*
reward, cosine(MiniLM(intent), MiniLM(output)): high >= 0.65 > mid >= 0.35 > low
({labels.get('high', 0):,} / {labels.get('mid', 0):,} / {labels.get('low', 0):,} examples). No output repeats a piece.
Every word of the 166 hand-written free-form evaluation intents (`data/freeform_intents.tsv`) is kept out
of the training data: {log['data']['eval_words_in_training_data']} occurrences (checked by the training run).

## Training
`{log.get('command', 'python -m slmkit.demo.train')}` (seed {log['seed']}): AdamW, lr {log['lr']:g} ({log['warmup']} warm-up steps) cosine to {log['lr'] / 10:g},
batch {log['batch_blocks']} x {log['block']} packed tokens, {log['steps']} steps, {log['tokens_seen']:,} tokens
({log['epochs']:.2f} epochs), {log.get('precision', 'fp32')} matmuls (weights and optimizer fp32).{_recipe_extras(log)} This run: {log['device']},
{log['threads']} threads, {log['train_seconds']} s ({log['tokens_seen'] / max(1, log['train_seconds']):,.0f} tokens/s; on this project's 2-core CPU with AVX512-BF16,
bf16 autocast trained 1.3x (this run's machine) to 2.5x faster than fp32, measured){_start_time(log)}, so the recipe fits the 2-hour CPU budget. Generating the data takes about {DATA_MINUTES_PER_10K * log['examples'] / 10_000:.0f} min on the same CPU (once; it is reused). Held-out
loss on the free-form evaluation texts {log['held_loss_fp32']:.4f} (perplexity {log['held_ppl_fp32']:.1f}; the
intents' own words are unseen, so the prompt part is hard to predict; the output given its prompt is what matters).

## Evaluation (fp16 reference)
`python -m slmkit.demo.evaluate --card`: the shipped evaluation files, every length x relevance
combination in equal numbers. Greedy: one output per example; sampled: {sampled['candidates']} seeded
outputs per example with the CLI's default sampling (temperature {sampled['temperature']}, top-p {sampled['top_p']},
min-p {sampled.get('min_p', 0)}, presence penalty {sampled.get('presence_penalty', 0)}); no_repeat_ngram
{decoding.get('no_repeat_ngram', 0)} (words and punctuation marks of the generated text) in both. Free-form: hand-written intents whose
words the model never saw; lexicon-style: the previous demo's held-out "modifier subject artifact" intents.

{markdown(cols)}

The bars of issue 12 (free-form, sampled, high relevance requested):
{chr(10).join(f"- {'met' if ok else 'NOT met'}: {what}" for what, ok in bars(cols))}
{extra}"""
    path = model_dir / "MODEL_CARD.md"
    path.write_text(card)
    return path


def main(argv: list[str] | None = None) -> None:
    from slmkit.runtimes.reference import ReferenceRuntime

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", help="GPT-2 folder (default: the demo model)")
    ap.add_argument("--n", type=int, default=540, help="examples per split (multiple of 9)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-repeat-ngram", type=int, default=DECODING["no_repeat_ngram"])
    ap.add_argument("--presence-penalty", type=float, default=DECODING["presence_penalty"])
    ap.add_argument("--candidates", type=int, default=CANDIDATES, help="sampled outputs per example")
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    ap.add_argument("--card", action="store_true", help="(re)write the model folder's MODEL_CARD.md")
    ap.add_argument("--notes", type=Path, default=Path(__file__).with_name("card_notes.md"),
                    help="Markdown appended to the model card (default: card_notes.md beside this module)")
    ap.add_argument("--set", choices=sorted(SET_GROUPS), dest="intent_set",
                    help="only a hand-written intent set: typed (capitals, codes, accents and punctuation: "
                         "data/typed_intents.tsv) or everyday (lower case and with a capital first letter: "
                         "data/everyday_intents.tsv); both also give how surely each intent is copied (teacher-forced)")
    ap.add_argument("--typed", action="store_const", const="typed", dest="intent_set", help="--set typed")
    args = ap.parse_args(argv)
    if args.intent_set:
        figs = {}
        with ReferenceRuntime(args.model, threads=args.threads) as rt:
            decoding = {k: v for k, v in DECODING.items() if k not in ("no_repeat_ngram", "presence_penalty")}
            decoding |= {"no_repeat_ngram": args.no_repeat_ngram, "presence_penalty": args.presence_penalty}
            for name in SET_GROUPS[args.intent_set]:
                figs[name] = fig = set_figures(rt, decoding, name, candidates=args.candidates)
                fig["copy"] = copy_probabilities(rt, INTENT_SETS[name][1]())
                print(set_markdown(fig))
                for row in fig["misses"]:
                    print(f"  not as typed: {row['intent']}\n    -> {row['output']}")
                for row in fig["copy"]["intents"]:
                    if row["least"] < fig["copy"]["weak"]:
                        print(f"  unsure copy: {row['intent']}: {row['token']!r} at p {row['least']:.2f}")
        if args.json:
            args.json.write_text(json.dumps(figs, indent=2, ensure_ascii=False) + "\n")
        return
    with ReferenceRuntime(args.model, threads=args.threads) as rt:
        print(f"evaluating {rt.info['model']} (fp16 reference), {args.n} examples per split", flush=True)
        rules = {"no_repeat_ngram": args.no_repeat_ngram, "presence_penalty": args.presence_penalty}
        cols = run_all(rt, args.n, rules, log_every=max(9, args.n // 5), candidates=args.candidates)
    print(markdown(cols))
    for what, ok in bars(cols):
        print(f"{'met' if ok else 'NOT met'}: {what}")
    for s in cols["free-form, sampled"]["samples"]:
        print(f"  {s['prompt']}\n    -> {s['output']}")
    if args.json:
        args.json.write_text(json.dumps(cols, indent=2) + "\n")
    if args.card:
        notes = "\n" + args.notes.read_text() if args.notes.is_file() else ""
        print(f"wrote {write_card(Path(rt.info['file']).parent, cols, notes)}")

if __name__ == "__main__":
    run_script(main)
