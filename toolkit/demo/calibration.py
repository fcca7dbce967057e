"""The demo model's calibration split: texts for importance matrices and sensitivity, never evaluated on.

``data/calibration.txt`` holds one training-format text per line (control tokens, intent, output), drawn by
the current data generator with its own seed from intents that appear in neither evaluation file; a test
checks that no intent and no text is shared with them. Rebuild (needs the ``train`` extra and MiniLM):

    python -m slmkit.demo.calibration [--intents 800]
"""
from __future__ import annotations

import argparse

from slmkit.demo.dataset import DATA, EVAL_FILES, build_train, examples
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
    """Generate the calibration texts (two per intent, evaluation intents left out); returns how many."""
    held = evaluation_intents()
    rows = [e for e in build_train(n_intents, 2, seed, generator=CALIBRATION_GENERATOR) if e.intent.casefold() not in held]
    texts = list(dict.fromkeys(e.text for e in rows))
    write_text_atomic(CALIBRATION_FILE, "\n".join(texts) + "\n")
    return len(texts)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--intents", type=int, default=800)
    args = ap.parse_args(argv)
    print(f"wrote {CALIBRATION_FILE} ({write_calibration(args.intents)} texts)")


if __name__ == "__main__":
    run_script(main)
