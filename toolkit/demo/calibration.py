"""The demo model's calibration split: texts for importance matrices and sensitivity, never evaluated on.

``data/calibration.txt`` holds one training-format text per line (control tokens, intent, output): first the
current data generator's texts, drawn with its own seed from intents that appear in neither evaluation file,
then (shuffled) the evaluation builder's texts for the hand-written typed and everyday intents, every length x
relevance combination each: written as the free-form evaluation texts are, on other intents. ``--max-kl`` holds
out the last texts to measure KL on, so they are of the second kind: the generator's made-up intents measured
1.4-1.8x less KL than the free-form evaluation texts on the same artifact. A test checks that no intent and no
text is shared with the evaluation files. Rebuild (needs the ``train`` extra and MiniLM):

    python -m slmkit.demo.calibration [--intents 800]
"""
from __future__ import annotations

import argparse
import random

from slmkit.demo.dataset import DATA, EVAL_FILES, build_eval, build_train, examples
from slmkit.demo.words import everyday_intents, typed_intents
from slmkit.errors import run_script
from slmkit.files import write_text_atomic

CALIBRATION_FILE = DATA / "calibration.txt"
CALIBRATION_SEED = 2468  # neither the training seed (1234) nor the evaluation seed (4321)
CALIBRATION_GENERATOR = 15  # the data the shipped model (v15) was last trained on


def calibration_texts() -> list[str]:
    """The shipped calibration split."""
    from slmkit.converters.calibration import read_texts

    return read_texts(CALIBRATION_FILE)


def evaluation_texts() -> set[str]:
    """The shipped evaluation files' texts (what bench scores the demo model on by default)."""
    return {e.text for split in EVAL_FILES for e in examples(split, 10**6)}


def evaluation_intents() -> set[str]:
    """Every intent of the shipped evaluation files, case-folded."""
    return {e.intent.casefold() for split in EVAL_FILES for e in examples(split, 10**6)}


def write_calibration(n_intents: int = 800, seed: int = CALIBRATION_SEED) -> int:
    """Generate the calibration texts (evaluation intents left out), as the module says; returns how many."""
    held = evaluation_intents()
    rows = [e for e in build_train(n_intents, 2, seed, generator=CALIBRATION_GENERATOR) if e.intent.casefold() not in held]
    written = [e for e in build_eval(list(typed_intents()) + list(everyday_intents()), seed)
               if e.intent.casefold() not in held]
    random.Random(seed).shuffle(written)
    texts = list(dict.fromkeys([e.text for e in rows] + [e.text for e in written]))
    write_text_atomic(CALIBRATION_FILE, "\n".join(texts) + "\n")
    return len(texts)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--intents", type=int, default=800)
    args = ap.parse_args(argv)
    print(f"wrote {CALIBRATION_FILE} ({write_calibration(args.intents)} texts)")


if __name__ == "__main__":
    run_script(main)
