"""onnxruntime backend for ONNX artifacts: a KV-cache decode loop over one InferenceSession.

Tokenization uses the HF tokenizer files beside the model (``tokenizers``; no torch or transformers).
The model's context, layer count and head shape are read from the metadata slmkit writes.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from slmkit.errors import SlmkitError, first_line
from slmkit.files import sha256_file
from slmkit.onnx_file import checker_error, inspect_onnx
from slmkit.runtimes.base import Runtime
from slmkit.tokenizer import TextTokenizer

REQUIRED_INPUTS = ("input_ids", "attention_mask", "position_ids")
OPTIMIZATIONS = {"none": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
                 "all": "ORT_ENABLE_ALL"}  # slmkit's name -> onnxruntime's GraphOptimizationLevel


class OnnxRuntime(Runtime):
    """Runs a GPT-2 ONNX model (with KV cache, as slmkit exports it) through onnxruntime."""

    backend = "onnxruntime"
    batched = True

    def __init__(self, path: str | Path, threads: int | None = None, n_ctx: int | None = None,
                 optimization: str = "all", sha256: str | None = None, checked: bool = False):
        """``sha256``: the file's hash, already verified by the caller against the manifest that slmkit
        wrote with it (its converter ran onnx.checker then). ``checked``: the caller has just run
        onnx.checker on it. With neither, onnx.checker runs here."""
        import onnxruntime as ort

        path = Path(path)
        model = inspect_onnx(path)  # structure, operator domains, external data: before onnxruntime parses it
        if sha256 is None and not checked and (problem := checker_error(path)):
            raise SlmkitError(f"{path}: not a valid ONNX model (onnx.checker: {problem})")
        if not set(REQUIRED_INPUTS) <= set(model.inputs) or "logits" not in model.outputs:
            raise SlmkitError(f"{path}: not a GPT-2 ONNX model exported by slmkit (inputs {sorted(model.inputs)[:4]})")
        if optimization not in OPTIMIZATIONS:
            raise SlmkitError(f"unknown onnxruntime optimization {optimization!r}; valid: {', '.join(OPTIMIZATIONS)}")
        threads = threads or max(1, os.cpu_count() or 1)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATIONS[optimization])
        so.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph / ... types
            raise SlmkitError(f"{path}: onnxruntime could not load the model ({first_line(e, 160)})") from None
        try:
            meta = self._session.get_modelmeta().custom_metadata_map
        except UnicodeDecodeError:
            raise SlmkitError(f"{path}: corrupt model metadata") from None
        try:
            layers, heads, head_dim, n_positions = (int(meta[f"slmkit.{k}"]) for k in
                                                    ("n_layer", "n_head", "head_dim", "n_positions"))
            settings = json.loads(meta.get("slmkit.settings", "{}"))
            if not isinstance(settings, dict):
                raise ValueError
        except KeyError:
            raise SlmkitError(f"{path}: not a GPT-2 ONNX model exported by slmkit (no slmkit metadata)") from None
        except ValueError:
            raise SlmkitError(f"{path}: corrupt slmkit metadata in the ONNX file") from None
        if (min(layers, heads, head_dim, n_positions) <= 0 or f"present.{layers - 1}.value" not in model.outputs
                or f"present.{layers}.key" in model.outputs):
            raise SlmkitError(f"{path}: its metadata ({layers} layers) does not match the graph's outputs")
        self._layers, self._heads, self._head_dim = layers, heads, head_dim
        tokenizer = TextTokenizer.from_folder(path.parent)
        self._outputs = ["logits"] + [f"present.{i}.{k}" for i in range(self._layers) for k in ("key", "value")]
        self._past_names = [f"past_key_values.{i}.{k}" for i in range(self._layers) for k in ("key", "value")]
        self._past: list[np.ndarray] = []
        self._len = 0
        super().__init__(tokenizer, min(n_ctx or n_positions, n_positions),
                         {**settings, "format": "onnx", "quant": settings.get("precision"), "file": str(path),
                          "threads": threads, "optimization": optimization, "sha256": sha256 or sha256_file(path)})

    def _reset(self) -> None:
        self._past = [np.zeros((1, self._heads, 0, self._head_dim), np.float32)] * (2 * self._layers)
        self._len = 0

    def _save(self) -> tuple[list[np.ndarray], int]:
        return self._past, self._len  # never changed in place: every step makes new arrays

    def _restore(self, state: tuple[list[np.ndarray], int]) -> None:
        self._past, self._len = state

    def _eval(self, ids: Sequence[int], all_logits: bool = True) -> np.ndarray:
        logits = self._run(np.array([ids], np.int64))[0]
        return logits if all_logits else logits[-1:]

    def _fork(self, n: int, prompt: Sequence[int], length: int) -> None:
        self._past = [np.repeat(p, n, axis=0) for p in self._past]

    def _eval_batch(self, tokens: Sequence[int]) -> np.ndarray:
        return self._run(np.array(tokens, np.int64)[:, None])[:, -1]

    def _run(self, input_ids: np.ndarray) -> np.ndarray:
        """One forward step over [batch, n] new tokens; keeps the presents as the next past."""
        # Plain session.run with numpy feeds: measured faster here than I/O binding or OrtValue feeds,
        # for the demo model and the 124M shape alike.
        batch, n = input_ids.shape
        if self._len + n > self.n_ctx:
            raise SlmkitError(f"sequence of {self._len + n} tokens exceeds the context of {self.n_ctx}")
        feed = {"input_ids": input_ids, "attention_mask": np.ones((batch, self._len + n), np.int64),
                "position_ids": np.repeat(np.arange(self._len, self._len + n, dtype=np.int64)[None], batch, 0)}
        feed.update(zip(self._past_names, self._past))
        try:
            out = self._session.run(self._outputs, feed)
        except Exception as e:  # onnxruntime's own error types: a model that loads but cannot run
            raise SlmkitError(f"{self.info['file']}: onnxruntime failed running the model "
                              f"({first_line(e, 160)})") from None
        self._past = out[1:]
        self._len += n
        return out[0]

    def _close(self) -> None:
        self._session = None
        self._past = []
