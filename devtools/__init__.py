"""Development campaigns: the tools slmkit's developers run to find bugs and measure the product.

Not part of the installed ``slmkit`` package (users never need them): fuzzing of hostile files
(``fuzz``), kills and full disks during quantization (``faults``), memory growth over load / close
cycles (``leaks``), Python overhead per token (``overhead``), decode speed (``decode``), GGUF types
against llama.cpp's own tools (``gguf_bench``), random call sequences on every backend
(``sequences``). Run them from the repository root, e.g. ``python -m devtools.fuzz``; their figures are
recorded in ``benchmarks/RESULTS.md`` with the commands that produced them.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a campaign's child process: ``-m devtools.X`` importable from any folder."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}
