"""Deterministic generator of the synthetic multitask intent→prompt dataset (the paper's form).

Each example pairs a user intent with an output for one task, under upside-down-RL control tokens for
task, target length bucket and desired relevance bucket. Intents are split by a stable hash, so the
evaluation split holds intents (modifier, subject, artifact combinations) never seen in training.

    python -m slmkit.demo.dataset --split eval --n 5     # print examples
"""
from __future__ import annotations

import argparse
import json
import random
import zlib
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

from slmkit.demo.lexicon import (ARTIFACTS, MODIFIERS, QUALITIES, SEARCH_SUFFIXES, STYLES, SUBJECTS,
                                 TAG_EXTRAS)
from slmkit.errors import run_script
from slmkit.prompts import EOS, LENGTHS, RELEVANCE, TASKS, build_prompt, length_bucket, word_count

HELDOUT_PERCENT = 4
TRAIN_SEED = 1234
EVAL_SEED = 4321


@dataclass(frozen=True)
class Intent:
    modifier: str
    subject: str
    artifact: str

    @property
    def text(self) -> str:
        return f"{self.modifier} {self.subject} {self.artifact}"

    @property
    def terms(self) -> list[str]:
        """The on-topic content terms of this intent."""
        return SUBJECTS[self.subject] + MODIFIERS[self.modifier] + ARTIFACTS[self.artifact]


@dataclass(frozen=True)
class Example:
    intent: str
    task: str
    length: str
    relevance: str
    output: str

    @property
    def prompt(self) -> str:
        return build_prompt(self.intent, self.task, self.length, self.relevance)

    @property
    def text(self) -> str:
        """The full training text: prompt, output and end-of-text."""
        return self.prompt + self.output + EOS


def is_heldout(intent: Intent) -> bool:
    return zlib.crc32(intent.text.encode()) % 100 < HELDOUT_PERCENT


def intents(split: str) -> list[Intent]:
    """All intents of a split ('train' or 'eval'), in a fixed order."""
    if split not in ("train", "eval"):
        raise ValueError(f"unknown split {split!r}")
    every = [Intent(m, s, a) for s in SUBJECTS for m in MODIFIERS for a in ARTIFACTS]
    return [i for i in every if is_heldout(i) == (split == "eval")]


def parse_intent(text: str) -> Intent | None:
    """The lexicon's reading of an intent string, or None for free-form intents."""
    for m in MODIFIERS:
        if text.startswith(m + " "):
            rest = text[len(m) + 1:]
            for a in ARTIFACTS:
                if rest.endswith(" " + a) and rest[: -len(a) - 1] in SUBJECTS:
                    return Intent(m, rest[: -len(a) - 1], a)
    return None


_ALL_TERMS: dict[str, set[str]] = {}
for _table in (SUBJECTS, MODIFIERS, ARTIFACTS):
    for _key, _terms in _table.items():
        for _t in _terms:
            _ALL_TERMS.setdefault(_t, set()).add(_key)


def content_terms(output: str) -> list[str]:
    """Lexicon content terms found in an output (whole comma/pipe-separated pieces or inside them)."""
    found = []
    padded = f" {output.replace(',', ' , ').replace('|', ' | ')} "
    for term in _ALL_TERMS:
        if f" {term} " in padded:
            found.append(term)
    return found


def relevance(intent: str, output: str) -> float:
    """Share of the output's content terms that belong to the intent (0 when it has none)."""
    parsed = parse_intent(intent)
    terms = content_terms(output)
    if parsed is None or not terms:
        return 0.0
    own = set(parsed.terms)
    return sum(t in own for t in terms) / len(terms)


class _Builder:
    """Draws content terms for one output: on-topic with probability ``p``, else off-topic."""

    def __init__(self, rng: random.Random, intent: Intent, p: float):
        self.rng, self.intent, self.p = rng, intent, p
        self.used: set[str] = set()

    def term(self) -> str:
        for _ in range(50):
            if self.rng.random() < self.p:
                t = self.rng.choice(self.intent.terms)
            else:
                table = self.rng.choice([SUBJECTS, MODIFIERS])
                key = self.rng.choice([k for k in table if k not in (self.intent.subject, self.intent.modifier)])
                t = self.rng.choice(table[key])
            if t not in self.used:
                self.used.add(t)
                return t
        return self.rng.choice(QUALITIES)


def _article(phrase: str) -> str:
    return "an" if phrase[0] in "aeiou" else "a"


def _t2i(b: _Builder) -> Iterator[str]:
    rng, it = b.rng, b.intent
    head = f"{it.modifier} {it.subject} {it.artifact}"
    yield f"{_article(head)} {head}"
    extras = [f"{rng.choice(STYLES)} style", rng.choice(QUALITIES)]
    while True:
        if extras and rng.random() < 0.3:
            yield extras.pop(0)
        else:
            yield b.term()


def _search(b: _Builder) -> Iterator[str]:
    rng, it = b.rng, b.intent
    yield rng.choice([it.text, f"{it.subject} {it.artifact}", f"{it.modifier} {it.artifact}"])
    while True:
        shape = rng.randrange(4)
        t = b.term()
        if shape == 0:
            yield f"{t} {it.artifact}"
        elif shape == 1:
            yield f"{it.modifier} {t}"
        elif shape == 2:
            yield f"{t} {rng.choice(SEARCH_SUFFIXES)}"
        else:
            yield f"{it.subject} {t}"


def _recommend(b: _Builder) -> Iterator[str]:
    rng, it = b.rng, b.intent
    yield it.subject
    yield it.artifact
    while True:
        yield rng.choice(TAG_EXTRAS) if rng.random() < 0.15 else b.term()


_PIECES: dict[str, Callable[[_Builder], Iterator[str]]] = {"t2i": _t2i, "search": _search,
                                                           "recommend": _recommend}
_JOIN = {"t2i": ("", ", "), "search": ("", " | "), "recommend": ("tags: ", ", ")}


def make_output(rng: random.Random, intent: Intent, task: str, length: str, rel: str) -> str:
    """One output for the intent whose task format, length bucket and relevance follow the controls."""
    lo, hi = LENGTHS[length]
    prefix, sep = _JOIN[task]
    for _ in range(100):
        target = rng.randint(lo, hi)
        p = rng.uniform(*RELEVANCE[rel])
        pieces: list[str] = []
        stream = _PIECES[task](_Builder(rng, intent, p))
        count = 0
        for _ in range(60):
            piece = next(stream)
            n = len(piece.split())
            if piece in pieces or count + n > target:
                if not pieces:
                    break  # the opening piece is mandatory: draw another target
                continue
            pieces.append(piece)
            count += n
            if count >= target:
                break
        if len(pieces) < 2:
            continue
        out = prefix + sep.join(pieces)
        if length_bucket(out) == length:
            return out
    raise RuntimeError(f"could not build a {length} {task} output for {intent.text!r}")


def examples(split: str, n: int, seed: int | None = None) -> list[Example]:
    """``n`` examples of a split; tasks, lengths and relevance buckets are balanced by cycling."""
    rng = random.Random(TRAIN_SEED if split == "train" and seed is None else EVAL_SEED if seed is None else seed)
    pool = intents(split)
    combos = [(t, ln, r) for t in TASKS for ln in LENGTHS for r in RELEVANCE]
    out = []
    for k in range(n):
        task, length, rel = combos[k % len(combos)] if split == "eval" else rng.choice(combos)
        intent = rng.choice(pool)
        out.append(Example(intent.text, task, length, rel, make_output(rng, intent, task, length, rel)))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["train", "eval"], default="train")
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--stats", action="store_true", help="print split sizes and word statistics")
    args = ap.parse_args(argv)
    exs = examples(args.split, args.n)
    if args.stats:
        words = [word_count(e.output) for e in exs]
        print(json.dumps({"intents_train": len(intents("train")), "intents_eval": len(intents("eval")),
                          "examples": len(exs), "mean_words": sum(words) / len(words),
                          "distinct_outputs": len({e.output for e in exs})}))
        return
    for e in exs:
        print(json.dumps(asdict(e)))


if __name__ == "__main__":
    run_script(main)
