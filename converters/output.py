"""What every format's converter writes beside its artifacts: tokenizer files and manifest entries."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from slmkit.errors import SlmkitError
from slmkit.files import TMP_PREFIX, atomic_path, clean_stale_temps, sha256_file
from slmkit.manifest import read_manifest, update_manifest
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


def remove_artifact(path: Path) -> None:
    """Delete an artifact file and, for ONNX, its external-data file beside it."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".data").unlink(missing_ok=True)


def artifact_entry(path: Path, fmt: str, quant: str, started: float, **extra: object) -> dict:
    """A manifest entry for a finished artifact file (``extra`` may set ``bytes`` to count a file beside it)."""
    return {"format": fmt, "quant": quant, "bytes": path.stat().st_size, "sha256": sha256_file(path),
            "seconds": round(time.time() - started, 2), **extra}


class Landing:
    """The artifacts of one conversion run. Each is recorded in the manifest the moment it is whole and
    checked, so a kill leaves at most one complete file not yet listed; when the run fails, files it put
    under their final names but never recorded (unchecked) are removed: nothing unchecked looks whole."""

    def __init__(self, out: Path, folder: ModelFolder):
        self.out, self.folder = out, folder
        self.entries: dict[str, dict] = {}
        self._placed: list[Path] = []

    def placed(self, path: Path) -> None:
        """``path`` is complete under its final name but not yet checked."""
        self._placed.append(path)

    def record(self, path: Path, entry: dict) -> None:
        self.entries[path.name] = entry
        update_manifest(self.out, self.folder, {path.name: entry}, {})

    def discard_unrecorded(self) -> None:
        listed = read_manifest(self.out).get("artifacts", {})
        for path in self._placed:
            if path.name not in listed:
                remove_artifact(path)


def prepare_output(folder: ModelFolder, out: Path, unquantized: Path, keep: bool) -> Path:
    """Create ``out`` with the tokenizer, drop stale temporaries, and name the unquantized source file:
    ``unquantized`` itself when it is a requested artifact, else a temporary beside it."""
    out.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out)
    copy_tokenizer(folder, out)
    return unquantized if keep else out / f"{TMP_PREFIX}source-{unquantized.name}"


class Conversion:
    """One conversion run, as a context manager: the output folder prepared (tokenizer copied, stale
    temporaries dropped), the unquantized source named (the artifact itself when requested, else a
    temporary), artifacts landed and recorded; on any failure or interruption the files placed but not
    recorded are removed, and a temporary source always is."""

    def __init__(self, folder: ModelFolder, out: Path, unquantized: Path, keep: bool, what: str):
        self.folder, self.out, self.unquantized, self.keep = folder, out, unquantized, keep
        # the temporary file's name means nothing to a user: errors name the model instead
        self.label = unquantized.name if keep else f"{folder.name} ({what} source)"

    def __enter__(self) -> "Conversion":
        self.source = prepare_output(self.folder, self.out, self.unquantized, self.keep)
        self.landing = Landing(self.out, self.folder)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None:
                self.landing.discard_unrecorded()
        finally:
            if not self.keep:
                remove_artifact(self.source)

    @property
    def entries(self) -> dict[str, dict]:
        return self.landing.entries
