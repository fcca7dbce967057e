"""Open-world intents: free-form phrases of 2-9 words over broad English, as people type them.

Shapes range from two words ("quiet harbor") to scenes ("a tailor sewing in a greenhouse"), wishes
("music for cooking"), how-tos, brand-like names ("Velora bakery sticker") and budgets; some are typed as
people type (capitals, product codes, accents, punctuation: "Velora X-200 bakery sticker?"). The evaluation
sets are the hand-written free-form intents (``words.freeform_intents``) and the old lexicon-style
held-out intents (modifier x subject x artifact), kept to compare the two.
"""
from __future__ import annotations

import functools
import random
import zlib
from collections.abc import Callable, Sequence

from slmkit.demo.words import (ARTIFACTS, BRAND_SYLLABLES, DESCRIPTOR_ADJECTIVES, STYLES, TIMES, Pools,
                               content_words, excluded_words, freeform_intents, pseudo_word)


def article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


THE_SHARE = 0.4       # a determiner slot takes "the" ...
POSSESSIVE_SHARE = 0.1  # ... or "my" / "our" / "your"; else "a" / "an"
PLURAL_SHARE = 0.2    # a noun after a determiner or preposition is plural ("the snowy mountains")


def determiner(rng: random.Random, phrase: str) -> str:
    """What people put before a noun phrase: "the" most often, then "a"/"an", sometimes "my". Generators
    up to 9 wrote "a"/"an" only: 371 of v9's 60,000 intents held a "the", and v9 copied "cabin in the snowy
    mountains" as "cabin in theory snowy mountains" and "house by the sea" as "house by sea"."""
    r = rng.random()
    if r < THE_SHARE:
        return "the"
    if r < THE_SHARE + POSSESSIVE_SHARE:
        return rng.choice(("my", "my", "our", "your"))
    return article(phrase)


_IRREGULAR = {"man": "men", "woman": "women", "child": "children", "person": "people", "foot": "feet",
              "tooth": "teeth", "mouse": "mice", "goose": "geese", "leaf": "leaves", "wolf": "wolves",
              "knife": "knives", "life": "lives", "sheep": "sheep", "deer": "deer", "fish": "fish"}


def plural(noun: str) -> str:
    """An English plural ("mountain" -> "mountains", "box" -> "boxes", "city" -> "cities", "man" -> "men")."""
    for sing, plur in _IRREGULAR.items():
        if noun == sing or (noun.endswith(sing) and sing in ("man", "child", "person")
                            and noun not in ("human", "shaman", "talisman", "caiman", "ottoman", "doberman")):
            return noun[:len(noun) - len(sing)] + plur
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in tuple("aeiou"):
        return noun[:-1] + "ies"
    return noun + "s"


def brand(rng: random.Random) -> str:
    """A made-up, brand-like name ("Zenloria")."""
    for _ in range(20):
        name = "".join(rng.choice(BRAND_SYLLABLES) for _ in range(rng.randint(2, 3)))
        if name not in excluded_words():
            return name.capitalize()
    return "Nexa"


Related = Callable[[str, str], Sequence[str]]  # (kind, anchor noun) -> words of that kind related to it


RARE_SHARE = 0.45    # a noun or adjective slot takes a rare word
PSEUDO_SHARE = 0.15  # ... or a made-up one
# Generator 12: everyday words where people put them. v11 saw "mountain" in 9 of 60,000 intents and a
# descriptor adjective ("snowy") almost only in outputs' learned pairs, so it completed "cabin in the snowy"
# with a pair's noun ("avenues") instead of copying "mountains".
EVERYDAY_SHARE = 0.22     # a noun slot takes a common, concrete noun (``everyday``) ...
EVERYDAY_PLURAL = 0.15    # ... plural this often
DESCRIPTOR_SHARE = 0.3    # an adjective slot takes an output descriptor adjective, before any noun
TYPED_SHARE = 0.3    # an intent written as people type it: capitals, model numbers, accents, punctuation

_ACCENTS = {"a": "áàâä", "e": "éèêë", "i": "íï", "o": "óôö", "u": "úüû", "n": "ñ", "c": "ç"}
# Generator 12: every accented Latin letter of Western and Central European languages (v11 never saw "ã" and
# typed "São Paulo" as "Sëo Paulo": a byte it never saw cannot be copied), on any word, not just brand names
ACCENTS_WIDE = {"a": "áàâäãåą", "e": "éèêëęě", "i": "íìîï", "o": "óòôöõøő", "u": "úùûüůű", "n": "ñńň",
                "c": "çćč", "s": "śšş", "z": "źżž", "y": "ýÿ", "r": "ř", "l": "ł", "g": "ğ", "d": "ď", "t": "ť"}
# generator 12 and on: share of accent typings put on any word, not a brand-like name. 12's half taught v12
# to accent words at random ("T-Rex wearing üGLASSES!"); 13 keeps the letters and makes it rarer.
ANY_WORD_ACCENT = {12: 0.5, 13: 0.15, 14: 0.15, 15: 0.15}
# Words people type with their accents; the evaluation's typed intents use others (data/typed_intents.tsv)
LOANWORDS = tuple("""
crème soufflé entrée purée rosé décor fiancée résumé naïve façade jalapeño piñata señora mañana açaí
über fräulein gemütlich smörgåsbord Zürich Málaga Bogotá Curaçao Île Mérida Genève Göteborg Dvořák Björn
""".split())


def _model_code(rng: random.Random) -> str:
    """A product code, number or ordinal as people write them ("F40", "X-200", "15", "60th", "2026")."""
    letter = rng.choice("ABCDEFGHKLMNPRSTVXZ")
    return rng.choice([f"{letter}{rng.randint(1, 99)}", f"{letter}-{rng.randint(100, 900)}", str(rng.randint(2, 16)),
                       f"{rng.randint(2, 90)}th", str(rng.randint(1990, 2030)), f"{letter}{letter.lower()}{rng.randint(2, 9)}"])


def typed(rng: random.Random, text: str, generator: int = 11) -> str:
    """``text`` as a person might type it, one way or two: a capital letter, a title-cased or shouted word,
    a product code or number, an accented letter (generator 12 and on: of ``ACCENTS_WIDE``), a possessive, "&", a
    question or exclamation mark (generator 14 and on: a price, a percentage, an abbreviation or a quoted name).
    The shipped v8 saw only lower-case ASCII words and mangled all of these ("Ferrari Fer Fisky" for "Ferrari
    F40 on a mountain road", nothing of "ÇA VA? café à Paris")."""
    words = text.split()
    content = [k for k, w in enumerate(words) if content_words(w) and w == w.lower()]
    for kind in rng.sample(TYPINGS_14 if generator >= 14 else _TYPINGS, 2 if rng.random() < 0.2 else 1):
        if kind == "sentence":
            words[0] = words[0][:1].upper() + words[0][1:]
        elif kind == "title":
            words = [w[:1].upper() + w[1:] if content_words(w) else w for w in words]
        elif kind == "shout" and content:
            k = rng.choice(content)
            words[k] = words[k].upper()
        elif kind == "shout all" and len(words) <= 4:
            words = [w.upper() for w in words]
        elif kind == "code":
            words.insert(rng.randint(1, len(words)), _model_code(rng))
        elif kind == "accent":  # a brand-like name takes one ("Zénloria"), else an accented word joins
            names = [k for k, w in enumerate(words) if w[:1].isupper() and k > 0]
            accents = _ACCENTS
            if generator >= 12:  # ... or, some of the time, any word takes one of every accent ("Sãvo")
                accents = ACCENTS_WIDE
                if rng.random() < ANY_WORD_ACCENT[generator]:
                    names = [rng.randrange(len(words))]
            spots = [i for i, ch in enumerate(words[names[0]]) if ch in accents] if names else []
            if spots:
                w, i = words[names[0]], rng.choice(spots)
                words[names[0]] = w[:i] + rng.choice(accents[w[i]]) + w[i + 1:]
            else:
                words.insert(rng.randint(0, len(words) - 1), rng.choice(LOANWORDS))
        elif kind == "possessive" and len(content) >= 2 and content[0] + 1 == content[1]:
            words[content[0]] += "'s"
        elif kind == "ampersand" and "and" in words:
            words[words.index("and")] = "&"
        elif kind == "question":
            words[-1] += rng.choice(["?", "?", "!"])
        elif kind == "price":  # "$25", "under $1200"
            price = f"${rng.choice([rng.randint(2, 99), 10 * rng.randint(10, 250)])}"
            if rng.random() < 0.5:
                words += [rng.choice(["under", "below", "for", "at"]), price]
            else:
                words.insert(rng.randint(0, len(words)), price)
        elif kind == "percent":  # "30% off", "90%"
            at = rng.randint(0, len(words))
            words.insert(at, f"{rng.choice(PERCENTS)}%")
            if rng.random() < 0.5:
                words.insert(at + 1, rng.choice(["off", "OFF"]))
        elif kind == "abbreviation":
            words.insert(rng.randint(0, len(words)), rng.choice(ABBREVIATIONS))
        elif kind == "quote" and not any('"' in w for w in words):  # a name or title in quotes
            i = rng.randrange(len(words))
            j = min(len(words) - 1, i + rng.randint(0, 2))
            words[i] = '"' + words[i]
            words[j] += '"'
    return " ".join(words)


PREPOSITIONS = ("in", "on", "by", "at", "over", "under", "through", "near", "across", "behind", "inside", "from",
                "along", "beside", "above", "into", "with", "without", "for", "around")

_TYPINGS = ("sentence", "sentence", "title", "shout", "shout all", "code", "code", "accent", "accent", "possessive",
            "ampersand", "question")
# Generator 14 and on: the punctuation people type that no earlier intent held. v13 + sparse embedding updates
# copied "$300", "50% OFF", "Dr. Martens" and '"Employee of the Month"' at p 0.00 (their first character had
# never followed anything in an intent). The evaluation's own forms stay out: its abbreviations ("Dr.", "Mt.",
# "St.", "vs.") are not among these, and no percentage is 50.
TYPINGS_14 = _TYPINGS + ("price", "percent", "abbreviation", "quote")
ABBREVIATIONS = ("Mr.", "Mrs.", "Ms.", "Prof.", "Ave.", "Rd.", "Blvd.", "Co.", "Inc.", "Ltd.", "No.", "Jr.", "Sr.",
                 "Capt.", "Sgt.", "Gov.", "Dept.", "approx.", "feat.", "vol.", "etc.", "e.g.", "w/")
PERCENTS = (5, 10, 15, 20, 25, 30, 35, 40, 60, 70, 75, 80, 90, 99, 100)


def _drawer(p: Pools, rng: random.Random, related: Related | None, coherence: float, generator: int,
            everyday: Sequence[str] = ()) -> Callable[[], str]:
    """A function that draws one intent of a random shape: an anchor noun and, with probability
    ``coherence``, the other words among the anchor's neighbours (so most intents read like something a
    person wants). Generator 9 draws exactly as it did (a/an only, its 36 shapes); 10 adds "the", "my",
    plurals and the everyday-scene shapes; 12 puts ``everyday`` nouns and descriptor adjectives in
    their slots (``EVERYDAY_SHARE``, ``DESCRIPTOR_SHARE``)."""
    if generator >= 12 and not everyday:
        raise ValueError(f"generator {generator} draws from everyday nouns: pass everyday=")
    pool = {"noun": p.nouns, "adj": p.adjectives, "verb": p.verbs, "gerund": p.gerunds}
    state = {"anchor": "", "coherent": False, "fresh": True}

    def pick(kind: str) -> str:
        if kind == "noun" and state["fresh"]:
            state["fresh"] = False
            return state["anchor"]
        if related is not None and state["coherent"] and state["anchor"]:
            near = related(kind, state["anchor"])
            if near:
                return rng.choice(near)
        return rng.choice(pool[kind])

    def start() -> None:
        state.update(anchor=rng.choice(p.nouns), coherent=rng.random() < coherence, fresh=True)

    def novel(kind: str) -> str:
        r = rng.random()
        if r < PSEUDO_SHARE:
            return pseudo_word(rng)
        if r < PSEUDO_SHARE + RARE_SHARE:
            return rng.choice(p.rare)
        return pick(kind)

    def n(bare: bool = True) -> str:
        """A noun; a bare one (no determiner: ``the`` makes its own plurals) may be plural."""
        if generator >= 12 and rng.random() < EVERYDAY_SHARE:
            noun = rng.choice(everyday)
            return plural(noun) if bare and rng.random() < EVERYDAY_PLURAL else noun
        return novel("noun")

    def a() -> str:
        if generator >= 12 and rng.random() < DESCRIPTOR_SHARE:
            return rng.choice(DESCRIPTOR_ADJECTIVES)
        return novel("adj")

    def v() -> str:
        return pick("verb")

    def g() -> str:
        return pick("gerund")

    def the(adjective: bool = False) -> str:
        """A noun phrase as people write one: "the snowy mountains", "my dog", "an old barn"."""
        words = [a()] if adjective else []
        noun = n(bare=False)
        if generator < 10:
            return " ".join([article(words[0] if words else noun), *words, noun])
        head = determiner(rng, words[0] if words else noun)
        if head not in ("a", "an") and rng.random() < PLURAL_SHARE:
            noun = plural(noun)
        return " ".join([head, *words, noun])

    def prep() -> str:
        return rng.choice(PREPOSITIONS)

    art, sty, tim = (lambda: rng.choice(ARTIFACTS)), (lambda: rng.choice(STYLES)), (lambda: rng.choice(TIMES))
    shapes = [
        lambda: f"{a()} {n()}",
        lambda: f"{a()} {n()} {art()}",
        lambda: f"{n()} {n()} {art()}",
        lambda: f"{a()} {a()} {n()}",
        lambda: f"{n()} {g()} in {the()}",
        lambda: f"{the()} {g()} in {the()}",
        lambda: f"{n()} {tim()}",
        lambda: f"{a()} {n()} {tim()}",
        lambda: f"{sty()} {art()} for {the(True)}",
        lambda: f"{art()} for {the()} {n()}",
        lambda: f"{n()} for {g()}",
        lambda: f"{a()} {n()} for {g()}",
        lambda: f"{brand(rng)} {n()} {art()}",
        lambda: f"{brand(rng)} {a()} {n()}",
        lambda: f"{n()} with {a()} {n()}",
        lambda: f"{n()} with {n()}",
        lambda: f"how to {v()} {the()}",
        lambda: f"{a()} {n()} under {rng.choice([20, 25, 40, 50, 75, 150, 200, 250, 500, 1000])}",
        lambda: f"{n()} {n()}",
        lambda: f"{n()} of {the(True)}",
        lambda: f"{a()} {n()} on {the()}",
        lambda: f"{n()} {g()} {n()}",
        lambda: f"{sty()} {n()} {g()}",
        lambda: f"{a()} {n()} in {the(True)}",
        # long intents (5-8 words), so that copying a whole long request is trained as much as a short one
        lambda: f"{a()} {n()} to {n()} in {n()}",
        lambda: f"{n()} {n()} for {g()} with {a()} {n()}",
        lambda: f"{the(True)} {g()} on {the()} {tim()}",
        lambda: f"{a()} {n()} and {a()} {n()} {art()}",
        lambda: f"{brand(rng)} {a()} {n()} with {n()} under {rng.choice([30, 60, 100, 300])}",
        lambda: f"{sty()} {art()} of {the()} {g()} {n()}",
        lambda: f"best {n()} {n()} for {a()} {n()}",
        lambda: f"{n()} {g()} near {the(True)} {tim()}",
        # 6-9 words with the joints people use in long requests, so the last words are copied too
        lambda: f"{art()} for my {n()} who loves {g()}",
        lambda: f"{a()} {art()} about {a()} {n()} {n()}",
        lambda: f"{n()} {g()} with {n()} in {the(True)}",
        lambda: f"{the(True)} and {the(True)} {tim()}",
    ]
    shapes += [] if generator < 10 else [
        # everyday scenes with the joints people type most ("house by the sea", "owl in the forest at night")
        lambda: f"{n()} {prep()} {the()}",
        lambda: f"{a()} {n()} {prep()} {the()}",
        lambda: f"{n()} {prep()} {the(True)}",
        lambda: f"{n()} {g()} {prep()} {the()}",
        lambda: f"{plural(n(bare=False))} {g()} {the()}",
        lambda: f"{a()} {n()} {g()} {tim()}",
        lambda: f"{n()} {prep()} {the()} {tim()}",
    ]

    def draw() -> str:
        start()
        return rng.choice(shapes)()

    return draw


@functools.cache
def lexicon_heldout() -> tuple[str, ...]:
    """The old demo's held-out intents (modifier x subject x artifact, 4% by a stable hash)."""
    from slmkit.demo.lexicon import ARTIFACTS as LEX_ARTIFACTS, MODIFIERS, SUBJECTS

    every = (f"{m} {s} {a}" for s in SUBJECTS for m in MODIFIERS for a in LEX_ARTIFACTS)
    return tuple(t for t in every if zlib.crc32(t.encode()) % 100 < 4)


def open_world_intents(pools: Pools, n: int, seed: int, related: Related | None = None,
                       coherence: float = 0.75, *, generator: int, everyday: Sequence[str] = ()) -> list[str]:
    """``n`` distinct free-form intents of 2-9 words, none with an evaluation word, seeded, as data generator
    ``generator`` draws them (``dataset.GENERATORS``). ``related`` gives an anchor noun's neighbours (by
    sentence embedding) so that most intents hang together; ``everyday``: the common, concrete nouns
    generator 12 draws often (``dataset.everyday_nouns``)."""
    rng = random.Random(seed)
    draw = _drawer(pools, rng, related, coherence, generator, everyday)
    banned = excluded_words()
    lexicon = set(lexicon_heldout())
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        text = " ".join(draw().split())
        if rng.random() < TYPED_SHARE:
            text = typed(rng, text, generator)
        words = text.split()
        if (text in seen or text in lexicon or not 2 <= len(words) <= 9
                or any(w in banned for w in content_words(text))):
            continue
        seen.add(text)
        out.append(text)
    return out


def freeform(task: str | None = None) -> list[str]:
    """The hand-written evaluation intents (of one task, or all)."""
    return [i for t, i in freeform_intents() if task in (None, t)]
