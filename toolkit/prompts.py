"""The paper's prompt format: control tokens for task, length and desired reward.

A training example (and a generation prompt) looks like::

    <|task:t2i|><|len:medium|><|rel:high|> cozy cabin wallpaper<|out|> OUTPUT<|endoftext|>

The control tokens are added special tokens of the tokenizer, so they are single ids and are never
split. Callers build prompts with :func:`build_prompt`; they never hand-write control tokens. The
intent and the output each follow one space, so a word of the intent is the same tokens wherever
the output copies it ("a vintage ...", "tags: vintage ...", "vintage ... | ..."): without it the
intent's first word was "vintage" in the prompt and " vintage" in the output, other ids, and a model
cannot learn that pairing for words it never saw. :func:`output_text` drops the output's space.
This module is pure Python (no torch) so the runtime can use it.
"""
from __future__ import annotations

from slmkit.errors import SlmkitError

TASKS: dict[str, str] = {
    "t2i": "text-to-image prompt",
    "search": "search query expansion",
    "recommend": "template / asset recommendation keywords",
}
# Output length buckets, in words (inclusive bounds).
LENGTHS: dict[str, tuple[int, int]] = {"short": (3, 10), "medium": (11, 20), "long": (21, 34)}
# Desired reward bucket (upside-down RL): the measured relevance of the output to the intent, the
# cosine of their all-MiniLM-L6-v2 embeddings, in [low, high).
RELEVANCE: dict[str, tuple[float, float]] = {"high": (0.65, 1.01), "mid": (0.35, 0.65), "low": (-1.0, 0.35)}

# The demo task's default sampling (the CLI's, bench's and the evaluation's "sampled"), chosen by
# measurement on the free-form evaluation set (the demo's MODEL_CARD.md): min-p keeps a copied word's
# pieces exact while descriptors stay varied; the presence penalty and no repeated pair of words (or
# punctuation marks) keep pieces from coming back.
DECODING: dict[str, float | int] = {"temperature": 0.7, "top_p": 0.95, "min_p": 0.2, "presence_penalty": 1.0,
                                    "no_repeat_ngram": 2}

EOS = "<|endoftext|>"
SEP = "<|out|>"


def task_token(task: str) -> str:
    return f"<|task:{task}|>"


def length_token(length: str) -> str:
    return f"<|len:{length}|>"


def relevance_token(relevance: str) -> str:
    return f"<|rel:{relevance}|>"


CONTROL_TOKENS: list[str] = (
    [task_token(t) for t in TASKS]
    + [length_token(n) for n in LENGTHS]
    + [relevance_token(r) for r in RELEVANCE]
    + [SEP]
)


def has_control_tokens(tokenizer) -> bool:
    """Whether a tokenizer (anything with ``token_to_id``) holds every control token of this prompt format:
    the demo's texts and prompts fit only a model that does."""
    return all(tokenizer.token_to_id(t) is not None for t in CONTROL_TOKENS)


def _check(kind: str, value: str, valid: dict) -> None:
    if value not in valid:
        raise SlmkitError(f"unknown {kind} {value!r}; valid: {', '.join(valid)}")


def build_prompt(intent: str, task: str = "t2i", length: str = "medium", relevance: str = "high") -> str:
    """The model input for one intent: control tokens, the intent, then the output separator."""
    _check("task", task, TASKS)
    _check("length", length, LENGTHS)
    _check("relevance", relevance, RELEVANCE)
    intent = " ".join(intent.split())
    if not intent:
        raise SlmkitError("empty intent")
    for tok in CONTROL_TOKENS + [EOS]:
        if tok in intent:
            raise SlmkitError(f"intent contains the control token {tok}")
    return f"{task_token(task)}{length_token(length)}{relevance_token(relevance)} {intent}{SEP}"


def training_text(prompt: str, output: str) -> str:
    """A whole example: a :func:`build_prompt` prompt, the output after its opening space, end-of-text."""
    return f"{prompt} {output}{EOS}"


def output_text(continuation: str) -> str:
    """The output a model writes after a :func:`build_prompt` prompt, without the space it opens with."""
    return continuation.removeprefix(" ")


def word_count(output: str) -> int:
    """Words in an output, ignoring the ' | ' separators of search expansions."""
    return len([w for w in output.replace("|", " ").replace(",", " ").split() if w != "tags:"])


def relevance_bucket(reward: float) -> str:
    """The relevance control of a measured reward (cosine of intent and output embeddings)."""
    for name, (lo, hi) in RELEVANCE.items():
        if lo <= reward < hi:
            return name
    return "high" if reward >= 1.0 else "low"


def length_bucket(output: str) -> str | None:
    n = word_count(output)
    for name, (lo, hi) in LENGTHS.items():
        if lo <= n <= hi:
            return name
    return None


def follows_format(task: str, output: str) -> bool:
    """Whether an output has the surface form its task asks for.

    t2i: two or more comma-separated phrases (the first the subject); search: two or more ' | '-separated
    queries without commas; recommend: 'tags: ' then two or more comma-separated items.
    """
    out = output.strip()
    if not out or out != output or "  " in out:
        return False
    if task == "t2i":
        parts = out.split(", ")
        return ("|" not in out and not out.startswith("tags:") and len(parts) >= 2
                and all(p.strip() == p and p for p in parts))
    if task == "search":
        parts = out.split(" | ")
        return "," not in out and len(parts) >= 2 and all(p and "|" not in p for p in parts)
    if task == "recommend":
        if not out.startswith("tags: ") or "|" in out:
            return False
        items = out[len("tags: "):].split(", ")
        return len(items) >= 2 and all(i and i.strip() == i for i in items)
    raise SlmkitError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
