"""Word pools of the open-world demo data: broad English from registry word lists, plus small scaffolds.

Nouns, adjectives and verbs come from ``wonderwords`` (part-of-speech lists), kept when ``wordfreq``
says they are common English; verb forms (``-ing``) are chosen by ``wordfreq`` too. These packages are
the ``train`` extra: used when the data is generated, never by the runtime. The small hand lists are
scaffolding (artifacts, styles, times, ...), not the content of intents.

Every word of the hand-written free-form evaluation intents (``data/freeform_intents.tsv``) is removed
from every pool, so the evaluation measures intents whose words the model has never seen.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from slmkit.errors import SlmkitError

DATA = Path(__file__).parent / "data"
FREEFORM_FILE = DATA / "freeform_intents.tsv"

# Function words: not content, so they may appear anywhere.
STOPWORDS = frozenset("""
a an the of in on at for with to and or from by over under near into onto through before behind between
about above below across along around against during without within how what which who do does is are be
my your our their his her its this that these those s t some any all
""".split())

# Words no intent or output of ours should carry (on top of wonderwords' profanity list).
_BLOCK = frozenset("""
terrorist terrorism murder murderer suicide rape rapist slave slavery genocide nazi corpse kill killer
x-rated abortion drug drugs cocaine heroin weapon gun guns bomb bullet porn sex sexy nude naked racist
pistol rifle revolver shotgun ammunition grenade breast
""".split())

_WORD = re.compile(r"[a-z0-9]+")


def content_words(text: str) -> list[str]:
    """Lower-case content words of a text (letters and digits; function words left out)."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def _task_lines(path: Path) -> tuple[tuple[str, str], ...]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            task, intent = line.split("\t")
            rows.append((task.strip(), intent.strip()))
    return tuple(rows)


@functools.cache
def freeform_intents() -> tuple[tuple[str, str], ...]:
    """The hand-written evaluation intents: ``(task, intent)`` pairs, in file order."""
    return _task_lines(FREEFORM_FILE)


TYPED_FILE = DATA / "typed_intents.tsv"


@functools.cache
def typed_intents() -> tuple[tuple[str, str], ...]:
    """The hand-written intents typed as people type them: ``(task, intent)`` pairs, in file order."""
    return _task_lines(TYPED_FILE)


EVERYDAY_FILE = DATA / "everyday_intents.tsv"


@functools.cache
def everyday_intents() -> tuple[tuple[str, str], ...]:
    """The hand-written everyday intents (lower case, common words): ``(task, intent)`` pairs, in file order."""
    return _task_lines(EVERYDAY_FILE)


@functools.cache
def excluded_words() -> frozenset[str]:
    """Content words of the evaluation intents: never used in the training data."""
    return frozenset(w for _, intent in freeform_intents() for w in content_words(intent))


def _usable(phrase: str) -> bool:
    words = _WORD.findall(phrase.lower())
    return bool(words) and not any(w in excluded_words() or w in _BLOCK for w in words)


def _clean(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if _usable(i)))


def _lines(text: str) -> list[str]:
    return [t.strip() for t in text.replace("\n", ";").split(";") if t.strip()]


# --- scaffolding (small hand lists; eval words are filtered out of them too) -------------------------
ARTIFACTS = _clean(_lines("""
wallpaper; flyer; banner; sticker; mural; illustration; painting; sketch; photo; photograph; print;
postcard; invite; cover; header; thumbnail; emblem; badge; mascot; placard; leaflet; pamphlet; label;
pattern; collage; storyboard; screensaver; lockscreen; avatar; frame; diorama; figurine; quilt; zine;
comic; manga panel; concept art; character sheet; magazine spread; billboard; storefront sign;
t-shirt graphic; tote bag print; phone case; notebook cover; gift wrap; wall art; art print; e-book cover;
carousel post; web page; landing page; app screen; newsletter; brochure cover; catalog page
"""))
STYLES = _clean(_lines("""
oil painting; pencil drawing; pixel art; isometric; low poly; line art; flat vector; cel shaded;
photorealistic; cinematic; anime; ukiyo-e; art nouveau; bauhaus; pop art; impressionist; surrealist;
charcoal; pastel; gouache; linocut; woodcut; ink wash; claymation; papercraft; retro futurism;
vaporwave; gothic; baroque; rococo; brutalist; scandinavian; boho; rustic; industrial; whimsical;
storybook; noir; sepia; monochrome; duotone; risograph; halftone; glitch; holographic; neon noir;
studio ghibli inspired; polaroid; film grain; tilt shift; double exposure; long exposure; macro
"""))
QUALITIES = _clean(_lines("""
highly detailed; sharp focus; soft lighting; dramatic lighting; golden hour; volumetric light;
rim light; wide angle; close-up; bird's eye view; shallow depth of field; 8k; ultra detailed;
muted palette; vibrant colors; pastel palette; warm tones; cool tones; high contrast; soft shadows;
symmetrical composition; rule of thirds; bokeh; dreamy haze; crisp edges; clean background
"""))
TIMES = _clean(_lines("""
at noon; at midnight; at twilight; at sunrise; in winter; in autumn; in spring; in summer;
on a foggy morning; on a snowy evening; after the storm; under a full moon; under heavy clouds;
in the blue hour; during a heatwave; on a windy afternoon; by candlelight; under starlight
"""))
# The pieces that fit any subject (``dataset.GENERIC``), and all a model can add to an intent in words it
# never learned: product refinements ("for sale", "maintenance", "setup") and format tags ("a4", "square
# format", "dark mode") looked arbitrary beside "a robot reading in a library" or "jazz for studying".
SEARCH_SUFFIXES = _clean(_lines("""
ideas; guide; tips; examples; inspiration; explained; best; top rated; reviews; recommendations;
for beginners; 2026; overview; online; popular; latest; step by step; pictures; what to know;
beginner guide; top picks; trends; advice
"""))
TAG_EXTRAS = _clean(_lines("""
modern; minimal; clean; bold; elegant; playful; retro; classic; colorful; trending; popular; top rated;
highly rated; fan favorite; staff picks; new arrivals; bestseller; fresh; timeless; simple; stylish;
cheerful; everyday; unique; seasonal
"""))
# Generator 11's further pieces. With 18 search suffixes a long output for words a model never learned
# listed every one, and then the no-repeat rule left it only a dangling " |" (v10: 12 of 72 greedy free-form
# searches); a pool twice what a long output needs always leaves a fitting next piece.
SEARCH_SUFFIXES_MORE = _clean(_lines("""
faq; facts; basics; comparison; checklist; how it works; common mistakes; pros and cons; alternatives;
in depth; summary; questions; worth it; quick start; must know; deep dive; videos; photos; key points;
at a glance; frequently asked; options
"""))
TAG_EXTRAS_MORE = _clean(_lines("""
handmade; premium; limited edition; giftable; editor's pick; curated; must have; aesthetic; chic; sleek;
charming; versatile; cute; customer favorite; crowd pleaser; feel good; iconic; beloved; trendy; tasteful;
understated; quirky; nostalgic; delightful; refined; artsy; fun; lovely; inspiring; relaxing; hidden gem;
must see; highly recommended; well loved; worth a try; cool; upbeat; whimsical; calming
"""))
# Generator 15's off-topic pieces, per task: a short list of everyday errands, far from what people ask for.
# Off-topic pieces drawn from thousands of bank phrases were each too unlikely to survive min-p sampling, so
# models asked for mid relevance answered with the intent and pieces that fit any subject (v11, ft1: measured).
OFF_TOPIC = {task: _clean(_lines(text)) for task, text in (
    ("t2i", """
filing cabinet; parking meter; traffic cone; tax form; fire hydrant; stapler; vending machine; barcode;
office chair; extension cord; power outlet; shopping cart; fax machine; paper clip; cardboard box;
water heater; photocopier; receipt; rubber stamp; gas pump; spreadsheet; door hinge; mailbox; name badge;
fuse box; binder clip; hole punch; postage stamp; tape dispenser; thermostat; paper shredder; clipboard
"""),
    ("search", """
tax deadline; parking permit; insurance claim; router reset; visa application; utility bills; bus schedule;
password reset; payroll software; zip codes; phone plans; spreadsheet formulas; currency exchange;
tire pressure; income tax; credit score; warranty claim; stock prices; voter registration; driving test;
plumbing repair; lease agreement; server outage; shipping rates; office supplies; fuel prices; tax refund;
firmware update; property tax; overdraft fees; parking fines; boiler service
"""),
    ("recommend", """
lawn fertilizer; motor oil; tax software; office supplies; toilet paper; laundry detergent; extension cord;
batteries; cable ties; phone charger; storage bins; dish soap; paper towels; trash bags; duct tape;
pest control; shoe polish; paint thinner; wiper blades; bubble wrap; sticky notes; water filter;
hand sanitizer; smoke detector; lint roller; surge protector; toner cartridge; drain cleaner; packing tape;
envelopes; oven cleaner; spark plugs
"""))}
# Adjectives an output's descriptors may use: what people put in image prompts, tags and searches
# (colour, material, texture, light and weather, season, era, place, a pleasant mood); the broad adjective
# pool (personality words, "moldy", "demonic") stays in intents, where people write whatever they like.
# Each group says which kinds of noun its adjectives fit: a colour most things, a material an object, a
# taste food, the weather a place or the sky ("paper toothpaste" and "juicy prey" came from pairing by
# relatedness alone). A noun's kind is judged by MiniLM against the ``NOUN_KINDS`` anchors.
ADJECTIVE_FITS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    group: (tuple(adjs.split()), tuple(kinds.split())) for group, adjs, kinds in (
        ("colour", """red crimson scarlet orange amber golden yellow green emerald olive teal turquoise blue
         navy azure indigo violet purple lavender pink rose coral peach cream ivory white silver gray
         charcoal black brown bronze copper rainbow pastel neon""", "object animal plant place sky"),
        ("material", """glass ceramic paper velvet silk linen leather woven knitted brass iron metallic
         bamboo wicker porcelain""", "object"),
        ("building", "wooden stone marble concrete oak pine", "object place"),
        ("surface", "smooth glossy matte textured layered geometric round curved crisp", "object food"),
        ("fur", "fluffy furry soft", "animal object"),
        ("size", "tiny miniature giant tall slender", "object animal plant place person"),
        ("weather", """sunny sunlit shady misty foggy snowy rainy stormy cloudy frosty dewy hazy moonlit
         starry breezy icy sunset""", "place sky plant"),
        ("light", "glowing shimmering sparkling luminous bright twinkling radiant candlelit",
         "object place sky plant"),
        ("scene mood", """cozy calm peaceful serene quiet tranquil idyllic enchanted mysterious magical
         dreamy majestic grand festive romantic nostalgic lively whimsical""", "place sky"),
        ("living mood", "cheerful joyful playful cute gentle graceful charming lovely elegant",
         "person animal"),
        ("era", """minimalist simple clean tidy vintage retro antique ancient medieval classic modern
         futuristic rustic ornate delicate polished weathered handmade handcrafted sleek""", "object place"),
        ("region", "urban rural coastal tropical alpine desert nordic", "place plant"),
        ("space", "cosmic celestial", "sky"),
        ("nature", "wild lush floral botanical mossy sandy rocky autumnal wintry summery", "place plant"),
        ("food", "organic crispy sweet savory spicy creamy juicy baked roasted fresh homemade", "food"),
        ("product", "sturdy compact portable durable lightweight waterproof", "object"),
        ("vivid", "bold vibrant colorful warm", "object place plant food"),
    )}
# Eval words are left out of the fits too (``_clean``).
ADJECTIVE_FITS = {g: (_clean(list(adjs)), kinds) for g, (adjs, kinds) in ADJECTIVE_FITS.items()}
DESCRIPTOR_ADJECTIVES = tuple(a for adjs, _ in ADJECTIVE_FITS.values() for a in adjs)
# Each descriptor adjective's noun kinds (the groups above, per adjective).
ADJECTIVE_KINDS = {a: frozenset(kinds) for adjs, kinds in ADJECTIVE_FITS.values() for a in adjs}
NOUN_KINDS = {kind: tuple(anchors.split()) for kind, anchors in (
    ("food", "bread cheese apple soup cake coffee pasta cookie salad chocolate pie sandwich"),
    ("animal", "dog cat horse bird fish fox rabbit bear owl deer butterfly whale"),
    ("plant", "tree flower rose fern moss grass tulip leaf cactus orchid vine bush"),
    ("place", "city beach forest village harbor mountain street castle garden valley cafe library kitchen island"),
    ("object", "lamp chair bottle clock guitar bag shoe vase bicycle shirt table book hat teapot"),
    ("person", "man woman child teacher farmer dancer king doctor musician sailor girl boy"),
    ("sky", "sky sunset river ocean snow cloud moon rain waterfall star storm lake"),
)}
# Descriptor nouns are the concrete, pleasant ones (intents may still name any noun), judged by MiniLM
# against these anchors: nearer the concrete than the abstract ones, and not near an unpleasant one.
CONCRETE = tuple("""tree house dog table river mountain flower car bread shirt lamp bird beach city book cup
chair garden street boat cake guitar window forest bicycle""".split())
ABSTRACT = tuple("""policy concept liability opinion process relationship management analysis violation
deficit plea access confirmation option narrative termination campaign competition theory efficiency""".split())
UNPLEASANT = ("disease", "vomit", "corpse", "violence", "filth", "pain", "death", "injury", "insult",
              "crime", "garbage", "poison", "wound", "fear", "disgust")
BRAND_SYLLABLES = ("ka", "lo", "zen", "mi", "ra", "vo", "tri", "nex", "lu", "sol", "qui", "bel", "dor",
                   "fi", "mar", "po", "sky", "ver", "tal", "ori", "ze", "bo", "na", "gle", "ro", "xo")


@dataclass(frozen=True)
class Pools:
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    verbs: tuple[str, ...]       # base forms
    gerunds: tuple[str, ...]     # -ing forms, aligned with nothing (a free pool)
    rare: tuple[str, ...]        # ~130k less common words and names: each occurs only a few times in the
                                 # data, so the model must learn to copy a word, not to recall it


def _gerund(verb: str) -> str | None:
    """The common -ing form of a verb, chosen by wordfreq among the spelling rules' candidates."""
    from wordfreq import zipf_frequency

    cands = {verb + "ing"}
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")):
        cands.add(verb[:-1] + "ing")
    if verb.endswith("ie"):
        cands.add(verb[:-2] + "ying")
    if len(verb) >= 3 and verb[-1] not in "aeiouwxy" and verb[-2] in "aeiou" and verb[-3] not in "aeiou":
        cands.add(verb + verb[-1] + "ing")
    best = max(cands, key=lambda c: zipf_frequency(c, "en"))
    return best if zipf_frequency(best, "en") >= 2.0 else None


def _profanity_list() -> set[str]:
    """better-profanity's word list (slurs wordfreq's rare words hold and wonderwords' list lacks)."""
    try:
        import better_profanity
    except ImportError as e:
        raise SlmkitError(f"generating the demo data needs the 'train' extra ({e.name} is missing)") from None
    path = Path(better_profanity.__file__).parent / "profanity_wordlist.txt"
    return {w.strip().lower() for w in path.read_text(encoding="utf-8").splitlines() if w.strip()}


@functools.cache
def pools(min_zipf: float = 3.0) -> Pools:
    """Common English nouns, adjectives and verbs (wordfreq Zipf frequency at least ``min_zipf``)."""
    try:
        import wonderwords
        from wordfreq import zipf_frequency
    except ImportError as e:
        raise SlmkitError(f"generating the demo data needs the 'train' extra ({e.name} is missing)") from None
    assets = Path(wonderwords.__file__).parent / "assets"
    profane = set((assets / "profanitylist.txt").read_text().split("\n")) | _profanity_list()

    def common(name: str, floor: float) -> tuple[str, ...]:
        words = (assets / name).read_text().split("\n")
        keep = [w for w in words if re.fullmatch(r"[a-z]+(-[a-z]+)?", w) and w not in profane
                and zipf_frequency(w, "en") >= floor]
        return _clean(sorted(set(keep)))

    verbs = common("verblist.txt", min_zipf)
    gerunds = _clean(sorted({g for v in verbs if (g := _gerund(v))}))
    from wordfreq import top_n_list

    rare = _clean([w for w in top_n_list("en", 150_000)[3000:] if re.fullmatch(r"[a-z]{3,14}", w) and w not in profane])
    return Pools(common("nounlist.txt", min_zipf), common("adjectivelist.txt", min_zipf - 0.5), verbs, gerunds, rare)


def pseudo_word(rng) -> str:
    """A pronounceable made-up word ("velkorin"): words no list has, to copy letter by letter."""
    onsets = ("b", "br", "c", "ch", "d", "dr", "f", "fl", "g", "gr", "h", "j", "k", "kl", "l", "m", "n", "p",
              "pl", "qu", "r", "s", "sh", "sk", "st", "t", "tr", "v", "w", "z", "")
    vowels = ("a", "e", "i", "o", "u", "ai", "ea", "io", "ou", "y")
    codas = ("", "", "n", "r", "l", "s", "x", "m", "k", "th", "nd", "st")
    for _ in range(20):
        w = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(rng.randint(1, 3)))
        if 3 <= len(w) <= 12 and _usable(w):
            return w
    return "zorvik"
