"""What every format's converter writes beside its artifacts: tokenizer files and manifest entries."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from slmkit.files import atomic_path, sha256_file
from slmkit.model_folder import ModelFolder

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "added_tokens.json")


def copy_tokenizer(source: ModelFolder, out: Path) -> list[str]:
    """Copy the HF tokenizer files into the artifact folder (atomically); returns their names."""
    copied = []
    for name in TOKENIZER_FILES:
        if (source.path / name).is_file():
            with atomic_path(out / name) as tmp:
                shutil.copyfile(source.path / name, tmp)
            copied.append(name)
    return copied


def artifact_entry(path: Path, fmt: str, quant: str, started: float, **extra: object) -> dict:
    """A manifest entry for a finished artifact file."""
    return {"format": fmt, "quant": quant, "bytes": path.stat().st_size, "sha256": sha256_file(path),
            "seconds": round(time.time() - started, 2), **extra}
