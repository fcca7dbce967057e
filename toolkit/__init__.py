"""slmkit: deploy small GPT-2 language models to desktop and mobile-class CPUs.

Folder ``toolkit/``, imported as ``slmkit``: the core (file formats, tokenizer, prompt format, metrics,
workloads, manifest, device profiles), the loader and the CLI. The other top-level folders are its
subpackages: ``converters/`` is ``slmkit.converters``, ``runtimes/`` is ``slmkit.runtimes``,
``benchmarks/`` is ``slmkit.benchmarks`` (see pyproject.toml's package-dir).
"""
from __future__ import annotations

from slmkit.errors import SlmkitError
from slmkit.version import __version__

__all__ = ["SlmkitError", "__version__", "load"]


def load(path=None, device: str = "cpu", threads: int | None = None, n_ctx: int | None = None, verify: bool = True,
         profiles_file=None):
    """Open a .gguf / .onnx file, an artifact folder or a GPT-2 folder as a Runtime (see slmkit.loader)."""
    from slmkit.loader import load as _load

    return _load(path, device, threads, n_ctx, verify, profiles_file)
