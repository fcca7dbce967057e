"""Folder ``runtimes/``, imported as ``slmkit.runtimes``: backends, one module each, behind the protocol
in ``base.py``; the shared sampler in ``sampling.py``.

Backends are imported lazily: opening a GGUF or ONNX artifact never imports torch.
"""
from __future__ import annotations

from pathlib import Path

from slmkit.errors import SlmkitError


def open_runtime(path: str | Path | None, threads: int | None = None, n_ctx: int | None = None,
                 sha256: str | None = None):
    """The backend for a file: ``.gguf`` → llama.cpp, ``.onnx`` → onnxruntime, a GPT-2 folder (or
    None, the demo model) → the transformers fp16 reference. ``sha256``: an artifact's hash, when known.
    A backend whose library is not installed is one SlmkitError naming the extra to install."""
    try:
        return _open(path, threads, n_ctx, sha256)
    except ModuleNotFoundError as e:
        from slmkit.extras import missing

        raise missing(e) from None


def _open(path: str | Path | None, threads: int | None, n_ctx: int | None, sha256: str | None):
    if path is None or Path(path).is_dir():
        from slmkit.runtimes.reference import ReferenceRuntime

        return ReferenceRuntime(path, threads=threads, n_ctx=n_ctx)
    suffix = Path(path).suffix.lower()
    if suffix == ".gguf":
        from slmkit.runtimes.llamacpp import LlamaCppRuntime

        return LlamaCppRuntime(path, threads=threads, n_ctx=n_ctx, sha256=sha256)
    if suffix == ".onnx":
        from slmkit.runtimes.onnxrt import OnnxRuntime

        return OnnxRuntime(path, threads=threads, n_ctx=n_ctx, sha256=sha256)
    raise SlmkitError(f"{path}: unknown artifact type (expected a .gguf or .onnx file, or a model folder)")
