"""The demo task's data: open-world intents → prompts, labelled as upside-down RL labels them.

Training data is generated (seeded, reproducible) from broad English word lists (``words``), with
on-topic content found by all-MiniLM-L6-v2 for any intent: a bank of descriptor phrases is ranked by
relatedness to the intent's known words; only clearly near ones are kept, mixed with pieces that fit any
subject (those alone when nothing is near: a model cannot relate descriptors to a word it has not learned);
far-away phrases give off-topic content. An output copies the
intent's own words and adds descriptors; its relevance control token is the bucket of its *measured* reward,
cosine(MiniLM(intent), MiniLM(output)), not of how it was built. Length and task controls as before.

The evaluation examples ship as data (``data/eval_freeform.jsonl``: the hand-written free-form
intents; ``data/eval_lexicon.jsonl``: the old lexicon-style held-out intents), so reading them needs
neither the word lists nor the scorer. Generators 9 to 12 changed only the training data (9: a share of
intents typed with capitals, codes, accents and punctuation; 10: "the", "my", plurals and everyday
prepositions; 11: more search and recommend pieces that fit any subject; 12: everyday nouns and descriptor
adjectives in intents), so the eval files of generator 8 stand; the hand-written typed and everyday intents (``data/typed_intents.tsv``, ``data/everyday_intents.tsv``) are asked directly (``evaluate --set``).

    python -m slmkit.demo.dataset build --out out/demo-data/train.jsonl     # the training data
    python -m slmkit.demo.dataset eval-files                                 # rewrite the shipped eval files
    python -m slmkit.demo.dataset show --split eval --n 5
"""
from __future__ import annotations

import argparse
import functools
import gzip
import json
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from slmkit.demo.words import (ABSTRACT, ADJECTIVE_KINDS, ARTIFACTS, CONCRETE, DATA, DESCRIPTOR_ADJECTIVES, NOUN_KINDS,
                               OFF_TOPIC, QUALITIES, SEARCH_SUFFIXES, SEARCH_SUFFIXES_MORE, STYLES, TAG_EXTRAS, TAG_EXTRAS_MORE,
                               TIMES, UNPLEASANT, content_words, freeform_intents)
from slmkit.errors import SlmkitError, run_script
from slmkit.prompts import LENGTHS, RELEVANCE, TASKS, build_prompt, length_bucket, relevance_bucket, training_text
from slmkit.workload import CHECK_TEXTS, Workload

GENERATOR_VERSION = 11  # the shipped model's (v11)
# Data generator versions: 9 (v9): a share of training intents typed as people type (intents.typed); 10: "the",
# "my" and plurals in intents, everyday prepositions (intents.determiner); not shipped: v10 copied everyday
# intents better and free-form, typed and lexicon-style ones worse, and ended long searches with a dangling " |".
# 11: 10's intents, and twice the search and recommend pieces that fit any subject (``generic``). 12: 11's, and
# intents with everyday nouns and descriptor adjectives in their slots (intents.EVERYDAY_SHARE) and accents of 72
# letters on any word (intents.ACCENTS_WIDE). 13: 12's, with accents put on any word less often
# (intents.ANY_WORD_ACCENT). 14: 13's, and typed intents with prices, percentages, abbreviations and quotes
# (intents.TYPINGS_14). 15: 14's intents, and off-topic pieces drawn from a short list per task (``words.OFF_TOPIC``)
# instead of thousands of bank phrases, so that a model asked for mid or low relevance finds them likely
# enough to survive min-p (``off_topic_pieces``).
GENERATORS = (9, 10, 11, 12, 13, 14, 15)
TRAIN_SEED = 1234
EVAL_SEED = 4321
EVAL_FILES = {"eval": DATA / "eval_freeform.jsonl", "lexicon": DATA / "eval_lexicon.jsonl"}
ON_TOPIC = 24           # nearest bank phrases an on-topic descriptor is drawn from
OFF_TOPIC_MAX = 0.15    # an off-topic descriptor's cosine to the intent is below this
NEAR_MIN = 0.42         # an on-topic descriptor's cosine to the intent's known words is at least this
OFF_TOPIC_MIN = 16      # generator 15: fewer short-list pieces far from an intent are topped up from the bank
STRONG_SHARE = 0.5      # share of on-topic descriptors drawn near the intent; the rest fit any subject
# On-topic pieces that fit any subject, per task (all of them when no bank phrase is near the intent):
# weakly related nouns looked arbitrary to a person ("gentle mother" for a robot reading in a library).
GENERIC = {"t2i": QUALITIES, "search": SEARCH_SUFFIXES, "recommend": TAG_EXTRAS}


def generic(generator: int) -> dict[str, tuple[str, ...]]:
    """The pieces that fit any subject, per task, in data generator ``generator``'s outputs."""
    if generator < 11:
        return GENERIC
    return GENERIC | {"search": SEARCH_SUFFIXES + SEARCH_SUFFIXES_MORE, "recommend": TAG_EXTRAS + TAG_EXTRAS_MORE}


@dataclass(frozen=True)
class Example:
    intent: str
    task: str
    length: str
    relevance: str
    output: str
    reward: float = float("nan")  # measured relevance of output to intent (MiniLM cosine)

    @property
    def prompt(self) -> str:
        return build_prompt(self.intent, self.task, self.length, self.relevance)

    @property
    def text(self) -> str:
        """The full training text (:func:`slmkit.prompts.training_text`)."""
        return training_text(self.prompt, self.output)


# --- reading the shipped evaluation data (no torch, no word lists) ------------------------------------
@functools.cache
def _eval_rows(split: str) -> tuple[Example, ...]:
    if split not in EVAL_FILES:
        raise SlmkitError(f"unknown split {split!r}; valid: {', '.join(EVAL_FILES)}, train")
    rows = [Example(**json.loads(line)) for line in EVAL_FILES[split].read_text().splitlines() if line]
    return tuple(balanced(rows))


def balanced(rows: list[Example]) -> list[Example]:
    """Rows in an order whose every block of 27 holds each task x length x relevance combination once,
    from 27 different intents; later blocks move on to other intents and combinations."""
    combos = [(ln, r) for r in RELEVANCE for ln in LENGTHS]
    by_intent: dict[tuple[str, str], dict[tuple[str, str], Example]] = {}
    for e in rows:
        by_intent.setdefault((e.task, e.intent), {})[(e.length, e.relevance)] = e
    per_task = {t: [k for k in by_intent if k[0] == t] for t in TASKS}
    blocks = min(len(v) for v in per_task.values()) // len(combos)
    out, used = [], set()
    for shift in range(len(combos)):
        for b in range(blocks):
            for t in TASKS:
                for j in range(len(combos)):
                    key = per_task[t][b * len(combos) + j]
                    e = by_intent[key].get(combos[(j + shift) % len(combos)])
                    if e is not None:
                        out.append(e)
                        used.add(id(e))
    return out + [e for e in rows if id(e) not in used]


def examples(split: str, n: int, seed: int | None = None, path: Path | None = None) -> list[Example]:
    """``n`` examples of a split. ``eval`` (free-form intents) and ``lexicon`` come from the shipped
    files in a balanced order (every length x relevance combination in turn; ``seed`` draws a sample
    instead); ``train`` reads the generated file ``path``."""
    if split == "train":
        if path is None:
            raise SlmkitError("the train split is generated: pass path= (python -m slmkit.demo.dataset build)")
        rows = read_jsonl(path)
    else:
        rows = list(_eval_rows(split))
    if seed is not None:
        rows = random.Random(seed).sample(rows, min(n, len(rows)))
    return rows[:n]


def workload(n_texts: int = CHECK_TEXTS, n_greedy: int = 27, n_intents: int = 27) -> Workload:
    """The demo model's default workload: its free-form evaluation examples (texts with outputs, prompts,
    and a seeded sample of intents)."""
    sampled = examples("eval", n_intents, seed=77)
    return Workload(texts=tuple(e.text for e in examples("eval", n_texts)),
                    greedy_prompts=tuple(e.prompt for e in examples("eval", n_greedy)),
                    sampled=tuple((e.prompt, e.intent) for e in sampled),
                    source=f"demo held-out examples ({n_texts})", prompts_source="demo held-out intents",
                    demo=frozenset({"texts", "prompts"}))


def read_jsonl(path: Path) -> list[Example]:
    """Examples from a JSONL file (``.jsonl.gz`` too)."""
    path = Path(path)
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return [Example(**json.loads(line)) for line in text.splitlines() if line]


def write_jsonl(path: Path, rows: list[Example]) -> None:
    from slmkit.files import write_text_atomic

    write_text_atomic(Path(path), "".join(json.dumps(asdict(e)) + "\n" for e in rows))


# --- building outputs -----------------------------------------------------------------------------------
@dataclass
class Plan:
    """How one output is built: what of the intent it carries and its share of on-topic descriptors."""
    head: str          # "full": the whole intent; "part": one of its words; "none": an off-topic subject
    p_on: float


PLANS: dict[str, Callable[[random.Random], Plan]] = {
    "high": lambda r: Plan("full", 1.0),  # v6 let up to a fifth be far: arbitrary nouns at high relevance
    "mid": lambda r: Plan("full" if r.random() < 0.5 else "part", r.uniform(0.0, 0.5)),
    "low": lambda r: Plan("part" if r.random() < 0.4 else "none", r.uniform(0.0, 0.2)),
}


class _Content:
    """Descriptors for one output: on-topic with probability ``p_on`` (near the intent, or ``generic``:
    fitting any subject), else far."""

    def __init__(self, rng: random.Random, near: list[str], far: list[str], p_on: float,
                 generic: tuple[str, ...]):
        self.rng, self.near, self.far, self.p_on, self.generic = rng, near, far, p_on, generic
        self.used: set[str] = set()

    def _on_topic(self) -> str:
        return self.rng.choice(self.near if self.near and self.rng.random() < STRONG_SHARE else self.generic)

    def term(self) -> str:
        for _ in range(40):
            t = self._on_topic() if self.rng.random() < self.p_on else self.rng.choice(self.far)
            if t not in self.used:
                self.used.add(t)
                return t
        return self.rng.choice(self.generic)


def _head(rng: random.Random, intent: str, plan: Plan, content: _Content) -> str:
    if plan.head == "full":
        return intent
    words = [w for w in intent.split() if w.lower() in content_words(w)] or intent.split()
    if plan.head == "part":
        return rng.choice(words)
    return rng.choice(content.far)


def _t2i(rng: random.Random, intent: str, plan: Plan, c: _Content) -> Iterator[str]:
    # The subject as the user wrote it, with no article put before it: an article must agree with a word
    # the model may never have seen ("an astronaut") and with plurals ("winter hiking boots"); v5's data
    # put "a" before any head, and the model learned "a astronaut" and "a winter hiking boots".
    yield _head(rng, intent, plan, c)
    extras = [f"{rng.choice(STYLES)} style", rng.choice(QUALITIES)]
    while True:
        yield extras.pop(0) if extras and rng.random() < 0.3 else c.term()


def _search(rng: random.Random, intent: str, plan: Plan, c: _Content) -> Iterator[str]:
    # The intent once, then refinements that do not copy it again: v6's later copies ("winter hiking boots
    # reviews", "best {t}") taught the model to re-copy words, which looped without a repetition rule and
    # came out misspelt with one ("winer hikning").
    yield _head(rng, intent, plan, c)
    while True:
        t = c.term()
        yield f"{t} {rng.choice(SEARCH_SUFFIXES)}" if t not in c.generic and rng.random() < 0.2 else t


def _recommend(rng: random.Random, intent: str, plan: Plan, c: _Content) -> Iterator[str]:
    # The intent as its first tag, as written, and no tag copying its words again: v6 split a long
    # intent into word tags ("gifts dad, likes, fishing") and the model went on copying ("library, librde").
    yield _head(rng, intent, plan, c)
    while True:
        yield c.term()


_PIECES = {"t2i": _t2i, "search": _search, "recommend": _recommend}
OUTPUT_FORM = {"t2i": ("", ", "), "search": ("", " | "), "recommend": ("tags: ", ", ")}  # task -> (opening, separator)


def pieces(output: str) -> list[str]:
    """An output's comma- or pipe-separated pieces, without the "tags:" opening."""
    return [p.strip() for p in output.replace("|", ",").removeprefix("tags:").split(",") if p.strip()]


def make_output(rng: random.Random, intent: str, task: str, length: str, plan: Plan, near: list[str],
                far: list[str], pieces_any: dict[str, tuple[str, ...]] = GENERIC) -> str:
    """One output for the intent in its task's format and length bucket, built as ``plan`` says;
    ``pieces_any``: the pieces that fit any subject, per task (``generic``)."""
    lo, hi = LENGTHS[length]
    prefix, sep = OUTPUT_FORM[task]
    for _ in range(100):
        target = rng.randint(lo, hi)
        pieces: list[str] = []
        stream = _PIECES[task](rng, intent, plan, _Content(rng, near, far, plan.p_on, pieces_any[task]))
        count = 0
        for _ in range(80):
            piece = " ".join(next(stream).split())
            n = len(piece.replace(",", " ").replace("|", " ").split())
            if not piece or "," in piece or "|" in piece or piece in pieces or count + n > target:
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
    raise SlmkitError(f"could not build a {length} {task} output for {intent!r}")


# --- the scorer and the descriptor bank ----------------------------------------------------------------
class Embedder:
    """all-MiniLM-L6-v2 (the bench's scorer) with texts sorted by length to batch with little padding."""

    def __init__(self, batch_size: int = 256):
        from slmkit.benchmarks.task_quality import MiniLmScorer

        self._scorer = MiniLmScorer(batch_size=batch_size)

    def __call__(self, texts: list[str]) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        emb = self._scorer.embed([texts[i] for i in order]).astype(np.float32)
        out = np.empty_like(emb)
        out[order] = emb
        return out


@dataclass
class Bank:
    """Descriptor phrases and their embeddings; the word pools' embeddings for coherent intents."""
    phrases: list[str]
    emb: np.ndarray
    words: dict[str, list[str]]
    word_emb: dict[str, np.ndarray]
    _near: dict[tuple[str, str], list[str]]
    known: frozenset[str] = frozenset()  # words the data holds often: the pools' and the scaffolding's
    everyday: tuple[str, ...] = ()  # common, concrete nouns (``everyday_nouns``): generator 12's intents

    def related(self, kind: str, anchor: str, k: int = 40) -> list[str]:
        """The ``k`` words of a pool ('noun', 'adj', 'verb', 'gerund', 'descriptor') nearest to an anchor noun."""
        key = (kind, anchor)
        if key not in self._near:
            i = self.words["noun"].index(anchor)
            sims = self.word_emb[kind] @ self.word_emb["noun"][i]
            top = np.argpartition(-sims, k)[:k + 1]
            self._near[key] = [self.words[kind][j] for j in top if self.words[kind][j] != anchor][:k]
        return self._near[key]


UNPLEASANT_MAX = 0.45    # a noun this close (MiniLM cosine) to an unpleasant word is no descriptor
CONCRETE_SHARE = 0.45    # the most concrete share of the nouns are descriptors
KIND_MIN = 0.40          # a descriptor noun is clearly of a kind: its kind score is at least this
PAIRS_PER_NOUN = 3
NEAREST_FITTING = 8      # a noun's adjective is drawn from this many of the nearest fitting ones
ADJECTIVE_CAP = 1.5      # no adjective pairs with more than this many times the mean number of nouns
EVERYDAY_ZIPF = 4.0      # an everyday noun is a descriptor noun at least this common (wordfreq Zipf)


def everyday_nouns(kinds: dict[str, str]) -> tuple[str, ...]:
    """The descriptor nouns people use every day ("mountain", "cabin", "lantern"): concrete and common."""
    from wordfreq import zipf_frequency

    return tuple(n for n in kinds if zipf_frequency(n, "en") >= EVERYDAY_ZIPF)


def _top3(embed: Callable[[list[str]], np.ndarray], emb: np.ndarray, anchors: tuple[str, ...]) -> np.ndarray:
    """Per row: the mean of its 3 best cosines to the anchor words."""
    return np.sort(emb @ embed(list(anchors)).T, axis=1)[:, -3:].mean(axis=1)


def noun_kinds(embed: Callable[[list[str]], np.ndarray], emb: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Each embedded noun's kind (``NOUN_KINDS``: its best anchor score) and that score."""
    kinds = list(NOUN_KINDS)
    score = np.stack([_top3(embed, emb, NOUN_KINDS[k]) for k in kinds], axis=1)
    return [kinds[int(i)] for i in score.argmax(axis=1)], score.max(axis=1)


def descriptor_nouns(embed: Embedder, nouns: list[str], emb: np.ndarray) -> dict[str, str]:
    """The nouns fit for descriptors, with their kind (``NOUN_KINDS``): concrete (the top ``CONCRETE_SHARE``
    by concrete minus abstract anchor score), clearly of one kind, and not near an unpleasant word."""
    concrete = _top3(embed, emb, CONCRETE) - _top3(embed, emb, ABSTRACT)
    cut = np.quantile(concrete, 1 - CONCRETE_SHARE)
    unpleasant = (emb @ embed(list(UNPLEASANT)).T).max(axis=1)
    kind, score = noun_kinds(embed, emb)
    return {n: k for n, c, u, k, s in zip(nouns, concrete, unpleasant, kind, score)
            if c >= cut and u < UNPLEASANT_MAX and s >= KIND_MIN}


def pair_adjectives(rng: random.Random, kinds: dict[str, str], adj_emb: np.ndarray, noun_emb: np.ndarray
                    ) -> list[str]:
    """``PAIRS_PER_NOUN`` "adjective noun" phrases per noun: adjectives that fit the noun's kind
    (``ADJECTIVE_FITS``), drawn from the nearest fitting ones, none used more than ``ADJECTIVE_CAP`` times
    its fair share (a few adjectives are near many nouns: "juicy" was in 2% of all descriptors)."""
    adjs = list(DESCRIPTOR_ADJECTIVES)
    fits = {k: np.array([k in ADJECTIVE_KINDS[a] for a in adjs]) for k in NOUN_KINDS}
    cap = ADJECTIVE_CAP * PAIRS_PER_NOUN * len(kinds) / len(adjs)
    used: Counter[str] = Counter()
    order = list(kinds)
    rng.shuffle(order)
    index = {n: i for i, n in enumerate(kinds)}
    pairs = []
    for noun in order:
        sims = np.where(fits[kinds[noun]], adj_emb @ noun_emb[index[noun]], -np.inf)
        near = [adjs[j] for j in np.argsort(-sims)[:NEAREST_FITTING] if np.isfinite(sims[j]) and adjs[j] != noun]
        open_ = [a for a in near if used[a] < cap] or sorted(near, key=used.__getitem__)[:2]
        for a in rng.sample(open_, min(PAIRS_PER_NOUN, len(open_))):
            used[a] += 1
            pairs.append(f"{a} {noun}")
    return pairs


def build_bank(embed: Embedder, seed: int) -> Bank:
    """Descriptor phrases, embedded: concrete, pleasant nouns, each paired with adjectives that fit it
    ("misty harbor"), styles, qualities and artifacts; plus the word pools' embeddings for intents."""
    from slmkit.demo.words import pools

    p = pools()
    words = {"noun": list(p.nouns), "adj": list(p.adjectives), "verb": list(p.verbs), "gerund": list(p.gerunds),
             "descriptor": list(DESCRIPTOR_ADJECTIVES)}
    word_emb = {k: embed(v) for k, v in words.items()}
    scaffolding = (*ARTIFACTS, *STYLES, *TIMES, *QUALITIES, *TAG_EXTRAS, *SEARCH_SUFFIXES)
    known = frozenset(w for pool in ("noun", "adj", "verb", "gerund") for w in words[pool]) | frozenset(
        w for phrase in scaffolding for w in content_words(phrase))
    bank = Bank([], np.zeros((0, 384), np.float32), words, word_emb, {}, known)
    kinds = descriptor_nouns(embed, words["noun"], word_emb["noun"])
    rows = [words["noun"].index(n) for n in kinds]
    pairs = pair_adjectives(random.Random(seed), kinds, word_emb["descriptor"], word_emb["noun"][rows])
    phrases = list(dict.fromkeys(list(kinds) + pairs + [f"{s} style" for s in STYLES] + list(QUALITIES)
                                 + list(ARTIFACTS)))
    bank.phrases, bank.emb = phrases, embed(phrases)
    bank.everyday = everyday_nouns(kinds)
    return bank


def descriptor_anchor(intent: str, known: frozenset[str]) -> str:
    """What an intent's on-topic descriptors are drawn near: the intent without the words the model cannot
    know (rare, made-up and brand-like words, each a few times in the data at most); "" when no content
    word is left. Descriptors drawn near a word the model has barely seen look arbitrary to it, and it
    learned to answer every unseen word with arbitrary descriptors ("savory donut" for a bicycle)."""
    kept = [w for w in intent.split() if all(c in known for c in content_words(w))]
    return " ".join(kept) if content_words(" ".join(kept)) else ""


def _neighbours(bank: Bank, intents: list[str], embed: Callable[[list[str]], np.ndarray], rng: random.Random,
                emb: np.ndarray | None = None) -> tuple[list[list[str]], list[list[str]]]:
    """Per intent: the bank phrases near its known words (cosine at least ``NEAR_MIN``) that add a new
    word, none when it has no known word; and phrases far from the whole intent (``emb``: the intents'
    embeddings, when already measured)."""
    emb = embed(intents) if emb is None else emb
    anchors = [descriptor_anchor(i, bank.known) for i in intents]
    uniq = sorted({a for a in anchors if a})
    anchor_emb = dict(zip(uniq, embed(uniq))) if uniq else {}
    near_emb = np.stack([anchor_emb[a] if a else emb[k] for k, a in enumerate(anchors)]) if intents else emb
    near, far = [], []
    k = min(3 * ON_TOPIC, len(bank.phrases) - 1)  # candidates ranked per intent
    for s in range(0, len(intents), 1024):
        sims = emb[s:s + 1024] @ bank.emb.T
        near_sims = near_emb[s:s + 1024] @ bank.emb.T
        top = np.argpartition(-near_sims, k, axis=1)[:, :k + 1]
        for row, intent in enumerate(intents[s:s + 1024]):
            far.append(_far(bank, sims[row], rng))
            if not anchors[s + row]:
                near.append([])
                continue
            own = set(content_words(intent))
            order = top[row][np.argsort(-near_sims[row, top[row]])]
            near.append([bank.phrases[j] for j in order if near_sims[row, j] >= NEAR_MIN
                         and not own & set(content_words(bank.phrases[j]))][:ON_TOPIC])
    return near, far


def _far(bank: Bank, sims: np.ndarray, rng: random.Random) -> list[str]:
    """Up to 40 random bank phrases far from an intent (``sims``: its cosines to the bank)."""
    cands = [j for j in (rng.randrange(len(bank.phrases)) for _ in range(120)) if sims[j] < OFF_TOPIC_MAX]
    return [bank.phrases[j] for j in cands[:40]] or [rng.choice(list(QUALITIES))]


def off_topic_pieces(intent_emb: np.ndarray, bank_far: list[list[str]],
                     embed: Callable[[list[str]], np.ndarray]) -> list[dict[str, list[str]]]:
    """Generator 15's off-topic pieces: per intent and task, the ``words.OFF_TOPIC`` pieces far from the
    intent (cosine below ``OFF_TOPIC_MAX``), topped up to ``OFF_TOPIC_MIN`` from its far bank phrases."""
    out: list[dict[str, list[str]]] = [{} for _ in range(len(intent_emb))]
    for task, listed in OFF_TOPIC.items():
        sims = intent_emb @ embed(list(listed)).T
        for k, row in enumerate(sims):
            far = [p for p, c in zip(listed, row) if c < OFF_TOPIC_MAX]
            out[k][task] = far + [p for p in bank_far[k] if p not in far][:max(0, OFF_TOPIC_MIN - len(far))]
    return out


def carries_off_topic(e: Example) -> bool:
    """Whether an output has a piece starting with one of its task's ``words.OFF_TOPIC`` pieces."""
    return any(p == t or p.startswith(t + " ") for p in pieces(e.output) for t in OFF_TOPIC[e.task])


def without_off_topic_highs(rows: list[Example]) -> list[Example]:
    """The examples but those labelled high that carry an off-topic piece (generator 15): a mid or low plan's
    short output can measure high, and its errands would teach high outputs to add them."""
    return [e for e in rows if not (e.relevance == "high" and carries_off_topic(e))]


def label(embed: Embedder, rows: list[tuple[str, str, str, str]]) -> list[Example]:
    """Measure each (intent, task, length, output)'s reward and label it with its relevance bucket."""
    intents = list(dict.fromkeys(r[0] for r in rows))
    ie = dict(zip(intents, embed(intents)))
    oe = embed([r[3] for r in rows])
    out = []
    for (intent, task, length, output), e in zip(rows, oe):
        reward = float(e @ ie[intent])
        out.append(Example(intent, task, length, relevance_bucket(reward), output, round(reward, 4)))
    return out


def build_train(n_intents: int, per_intent: int, seed: int = TRAIN_SEED, log: Callable[[str], None] = print,
                generator: int = GENERATOR_VERSION) -> list[Example]:
    """The training data: ``n_intents`` open-world intents of generator version ``generator``, ``per_intent``
    examples each (generator 15 leaves out the high-relevance ones carrying an off-topic piece: about 6%)."""
    from slmkit.demo.intents import open_world_intents
    from slmkit.demo.words import pools

    t0 = time.time()
    embed = Embedder()
    bank = build_bank(embed, seed)
    log(f"bank: {len(bank.phrases)} descriptor phrases, {time.time() - t0:.0f}s")
    intents = open_world_intents(pools(), n_intents, seed, related=bank.related, generator=generator,
                                 everyday=bank.everyday)
    rng = random.Random(seed)
    emb = embed(intents)
    near, far = _neighbours(bank, intents, embed, rng, emb)
    short = off_topic_pieces(emb, far, embed) if generator >= 15 else None
    log(f"intents: {len(intents)} with neighbours, {time.time() - t0:.0f}s")
    rows, pieces_any = [], generic(generator)
    for i, intent in enumerate(intents):
        for _ in range(per_intent):
            task, length, want = rng.choice(list(TASKS)), rng.choice(list(LENGTHS)), rng.choice(list(RELEVANCE))
            rows.append((intent, task, length, make_output(rng, intent, task, length, PLANS[want](rng), near[i],
                                                             short[i][task] if short else far[i], pieces_any)))
    log(f"outputs: {len(rows)} built, {time.time() - t0:.0f}s; measuring rewards")
    out = label(embed, rows)
    if generator >= 15:
        out = without_off_topic_highs(out)
    log(f"labelled: {dict(Counter(e.relevance for e in out))}, {time.time() - t0:.0f}s")
    return out


def intents_for(n_examples: int, generator: int, per_intent: int = 2) -> int:
    """How many intents ``build_train`` needs to give at least ``n_examples`` examples."""
    return -(-n_examples // per_intent) * (11 if generator >= 15 else 10) // 10


def build_eval(intents_tasks: list[tuple[str, str]], seed: int, tries: int = 8) -> list[Example]:
    """Every length x relevance combination for each (task, intent): the generator's output whose
    measured bucket is the requested one (the closest of ``tries`` when none is)."""
    embed = Embedder()
    bank = build_bank(embed, seed)
    rng = random.Random(seed)
    intents = [i for _, i in intents_tasks]
    near, far = _neighbours(bank, intents, embed, rng)
    combos = [(ln, r) for r in RELEVANCE for ln in LENGTHS]
    rows, want = [], []
    for k, (task, intent) in enumerate(intents_tasks):
        for length, rel in combos:
            for _ in range(tries):
                rows.append((intent, task, length, make_output(rng, intent, task, length, PLANS[rel](rng),
                                                                 near[k], far[k])))
                want.append(rel)
    labelled = label(embed, rows)
    centre = {r: sum(RELEVANCE[r]) / 2 for r in RELEVANCE}
    out = []
    for s in range(0, len(labelled), tries):
        group, rel = labelled[s:s + tries], want[s]
        best = min(group, key=lambda e: (e.relevance != rel, abs(e.reward - centre[rel])))
        out.append(Example(best.intent, best.task, best.length, rel, best.output, best.reward))
    # interleave so that the first n rows of the file cover every combination and task
    by_combo = [out[i::len(combos)] for i in range(len(combos))]
    return [row for group in zip(*by_combo) for row in group]


def write_eval_files(seed: int = EVAL_SEED) -> None:
    from slmkit.demo.intents import lexicon_heldout

    free = list(freeform_intents())
    rng = random.Random(seed)
    lex = [(list(TASKS)[k % 3], i) for k, i in enumerate(rng.sample(list(lexicon_heldout()), len(free)))]
    for split, items in (("eval", free), ("lexicon", lex)):
        rows = build_eval(items, seed)
        write_jsonl(EVAL_FILES[split], rows)
        print(f"wrote {EVAL_FILES[split]} ({len(rows)} examples)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="generate the training data")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--intents", type=int, default=60_000)
    b.add_argument("--per-intent", type=int, default=2)
    b.add_argument("--seed", type=int, default=TRAIN_SEED)
    b.add_argument("--generator", type=int, choices=GENERATORS, default=GENERATOR_VERSION)
    sub.add_parser("eval-files", help="rewrite the shipped evaluation files")
    s = sub.add_parser("show", help="print examples")
    s.add_argument("--split", default="eval")
    s.add_argument("--path", type=Path)
    s.add_argument("--n", type=int, default=10)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(args.out, build_train(args.intents, args.per_intent, args.seed, generator=args.generator))
        print(f"wrote {args.out}")
    elif args.cmd == "eval-files":
        write_eval_files()
    else:
        for e in examples(args.split, args.n, path=args.path):
            print(json.dumps(asdict(e)))


if __name__ == "__main__":
    run_script(main)
