"""What quality is measured on: texts to score, prompts to continue, intents to sample, given as data.

The converters' checks and ``slmkit bench`` take a :class:`Workload` from their caller; the demo
model's default one is built by ``slmkit.demo.dataset.workload`` from its shipped evaluation file,
and a user's own comes from text files (:func:`read_lines`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slmkit.errors import SlmkitError

CHECK_TEXTS = 27  # how many texts the converters' checks compare logits on


@dataclass(frozen=True)
class Workload:
    texts: tuple[str, ...]                  # scored by every runtime (perplexity, drift against the reference)
    greedy_prompts: tuple[str, ...]         # greedy continuations compared with the reference's
    sampled: tuple[tuple[str, str], ...]    # (prompt, intent): candidates scored for relevance and diversity
    source: str                             # where the texts came from, for reports
    prompts_source: str = ""                # where the prompts and intents came from, for reports
    demo: frozenset[str] = frozenset()      # the parts ("texts", "prompts") that are the demo model's own


def prompt_pairs(lines: list[str], template: str | None = None) -> list[tuple[str, str]]:
    """(prompt, intent) per line: the line itself, or ``template`` with ``{intent}`` replaced by it (a
    model's own control tokens, say "<|task:t2i|>{intent}<|out|>"); relevance is scored against the line."""
    if template is not None and "{intent}" not in template:
        raise SlmkitError(f"the prompt template must contain {{intent}}, got {template!r}")
    return [(template.replace("{intent}", line) if template else line, line) for line in lines]


def read_lines(path: str | Path, what: str = "texts") -> list[str]:
    """The non-empty lines of a UTF-8 text file; one clear error when it cannot be read or has none."""
    try:
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise SlmkitError(f"{path}: cannot read {what} ({e})") from None
    lines = [ln for ln in lines if ln]
    if not lines:
        raise SlmkitError(f"{path}: no {what} (one per line expected)")
    return lines
