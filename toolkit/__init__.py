"""slmkit: deploy small GPT-2 language models to desktop and mobile-class CPUs."""
from __future__ import annotations

from slmkit.errors import SlmkitError

__version__ = "0.1.0"

__all__ = ["SlmkitError", "__version__", "load"]


def load(path=None, device: str = "cpu", threads: int | None = None, n_ctx: int | None = None, verify: bool = True,
         profiles_file=None):
    """Open a .gguf / .onnx file, an artifact folder or a GPT-2 folder as a Runtime (see slmkit.loader)."""
    from slmkit.loader import load as _load

    return _load(path, device, threads, n_ctx, verify, profiles_file)
