"""Does a model copy everyday intents exactly? Common-word intents, as typed and with a capital first letter.

    python -m devtools.copy_probe MODEL_OR_ARTIFACT [MODEL_OR_ARTIFACT ...] [--candidates 4]

The evaluation sets keep their intents' words out of the training data (free-form) or take them from the
old closed lists (lexicon-style); this probe asks what a person types most: everyday words the model was
trained on, in lower case and with the capital first letter a phone or a sentence habit gives. Each intent
gets ``--candidates`` t2i outputs with the CLI's default sampling; an output counts when it opens with the
intent exactly as typed. Prints the failures and the counts (used for demo v8 / v9 in benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse

from slmkit.errors import run_script
from slmkit.loader import load
from slmkit.prompts import DECODING, build_prompt, output_text

INTENTS = (
    "cabin in the snowy mountains", "lighthouse on the cliff", "boat on the lake", "cat in the garden",
    "dog on the beach", "walk in the park", "castle in the clouds", "fox in the snow", "house by the sea",
    "girl under the stars", "owl in the forest at night", "tea party in the garden", "picnic on the grass",
    "train through the desert", "bridge over the river", "old man fishing at sunrise",
    "kids building a sandcastle", "coffee shop on a rainy day", "mountain bike trail map",
    "birthday cake with candles", "sunflower field in summer", "robot dog playing fetch",
    "paper lanterns over a canal", "steampunk airship over london", "chess game in the park",
)


def copied(path: str, intents: list[str], candidates: int) -> tuple[int, list[tuple[str, list[str]]]]:
    """(outputs opening with their intent exactly, [(intent, its other outputs' first pieces)])."""
    good, misses = 0, []
    with load(path) as rt:
        for intent in intents:
            outs = rt.generate(build_prompt(intent, "t2i"), n=candidates, max_new_tokens=48, seed=1, **DECODING)
            outs = [output_text(o) for o in outs]
            bad = [o.split(",")[0] for o in outs if not o.startswith(intent)]
            good += len(outs) - len(bad)
            if bad:
                misses.append((intent, bad))
    return good, misses


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", metavar="MODEL_OR_ARTIFACT")
    ap.add_argument("--candidates", type=int, default=4)
    args = ap.parse_args(argv)
    capital = [i[0].upper() + i[1:] for i in INTENTS]
    for path in args.paths:
        for label, intents in (("lower case", list(INTENTS)), ("capital first letter", capital)):
            good, misses = copied(path, intents, args.candidates)
            total = len(intents) * args.candidates
            print(f"{path}, {label}: {good} of {total} outputs open with the intent as typed "
                  f"({100 * good / total:.0f}%)")
            for intent, bad in misses:
                print(f"  {intent!r} -> {bad}")


if __name__ == "__main__":
    run_script(main)
