"""Calibration texts: what importance matrices and sensitivity are measured on, checked before any work.

``--calibration FILE`` (UTF-8 text, one text per line) or ``--calibration demo`` (the demo model's calibration
split, disjoint from its evaluation files). Refused in one line: a file that cannot be read, is binary or
empty, holds too few tokens to estimate anything, or shares a text with the demo evaluation files (scores on
texts a quantizer was tuned on flatter it). The manifest records the source, the texts' sha256 and their
token count with every calibrated artifact, so ``slmkit bench`` can refuse to score on overlapping texts.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from slmkit.errors import SlmkitError
from slmkit.files import sha256_file
from slmkit.tokenizer import TextTokenizer

if TYPE_CHECKING:
    from slmkit.converters.imatrix import ImportanceMatrix
    from slmkit.model_folder import ModelFolder

DEMO = "demo"
MIN_TOKENS = 1000  # fewer give importance estimates dominated by a few texts


@dataclass(frozen=True)
class Calibration:
    texts: tuple[str, ...]
    source: str        # "demo" or the file's path
    sha256: str        # of the texts, one per line, as read
    tokens: int        # under the model's tokenizer

    def split(self, held: int, tokenizer: TextTokenizer) -> tuple["Calibration", tuple[str, ...]]:
        """The calibration without its last ``held`` texts, and those texts (held out to measure KL on)."""
        keep = self.texts[:-held]
        return Calibration(keep, self.source, texts_sha256(keep), sum(len(tokenizer.encode(t)) for t in keep)), \
            self.texts[-held:]

    def record(self) -> dict:
        """What the manifest keeps of it."""
        return {"source": self.source, "texts": len(self.texts), "tokens": self.tokens, "sha256": self.sha256}


def texts_sha256(texts: tuple[str, ...] | list[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


def read_texts(path: Path) -> list[str]:
    """The non-empty lines of a calibration file; one clear error for an unreadable, binary or empty one."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SlmkitError(f"{path}: cannot read the calibration texts ({e.strerror or e})") from None
    if b"\x00" in raw:
        raise SlmkitError(f"{path}: a binary file, not calibration texts (one UTF-8 text per line)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SlmkitError(f"{path}: not UTF-8 text (byte {e.start}); calibration texts are one UTF-8 text per line") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise SlmkitError(f"{path}: no calibration texts (one text per line expected)")
    return lines


def overlap(texts: list[str] | tuple[str, ...], scored: set[str]) -> list[str]:
    return [t for t in texts if t in scored]


def load_calibration(spec: str, tokenizer: TextTokenizer, demo: list[str], scored: set[str]) -> Calibration:
    """``spec``: a file path or ``demo`` (``demo``: the demo model's calibration texts); ``scored``: texts quality
    is measured on (the demo evaluation files' texts), which calibration must not share; checked as the module
    says."""
    texts = demo if spec == DEMO else read_texts(Path(spec))
    shared = overlap(texts, scored)
    if shared:
        raise SlmkitError(f"{spec}: {len(shared)} calibration texts are also demo evaluation texts (first: "
                          f"{shared[0][:60]!r}); calibrate on texts the model is not evaluated on")
    tokens = sum(len(tokenizer.encode(t)) for t in texts)
    if tokens < MIN_TOKENS:
        raise SlmkitError(f"{spec}: the calibration texts hold {tokens} tokens; at least {MIN_TOKENS} are needed")
    return Calibration(tuple(texts), DEMO if spec == DEMO else str(spec), texts_sha256(texts), tokens)


@dataclass
class Importance:
    """Where a run's importance matrix comes from: calibration texts (computed here, with the inputs' full second
    moments for error compensation), or a file (``matrix`` read from ``file``, GGUF only); ``out``: where to write
    the one computed. ``method`` (GGUF): "gptq" also rounds Q4_K / Q4_0 / Q6_K / Q8_0 matrices with error
    compensation (:mod:`slmkit.converters.gptq`), "imatrix" only weighs llama.cpp's rounding. ONNX artifacts are
    calibrated by error compensation (:mod:`slmkit.converters.onnx_gptq`)."""
    calibration: Calibration | None = None
    matrix: "ImportanceMatrix | None" = None
    file: Path | None = None
    out: Path | None = None
    method: str = "gptq"
    max_kl: tuple[float, ...] = ()       # quality budgets: one mixed-precision artifact each
    held_out: tuple[str, ...] = ()       # calibration texts kept out of the matrix, to measure KL on

    def record(self, fmt: str) -> dict | None:
        """The manifest's ``calibration`` of each ``fmt`` artifact quantized with it (None: round-to-nearest)."""
        if self.calibration is not None:
            method = "gptq" if fmt == "onnx" else "imatrix+gptq" if self.method == "gptq" else "imatrix"
            return {"method": method, **self.calibration.record()}
        if self.file is not None and fmt == "gguf":
            return {"method": "imatrix", "source": f"imatrix file {self.file}", "sha256": sha256_file(self.file),
                    "datasets": self.matrix.datasets, "chunks": self.matrix.chunk_count}
        return None

    def ensure_matrix(self, folder: "ModelFolder", threads: int, log: Callable[[str], None], *,
                      hessians: bool | None = None) -> "ImportanceMatrix":
        """The importance matrix of the fp16 reference on the calibration texts, computed once per run (with the
        second moments when ``hessians``, by default when the method is gptq)."""
        from slmkit.converters.imatrix import compute_imatrix
        from slmkit.runtimes.reference import ReferenceRuntime

        need = self.method == "gptq" if hessians is None else hessians
        if self.matrix is not None and (self.matrix.hessians or not need):
            return self.matrix
        t0 = time.time()
        with ReferenceRuntime(folder, threads=threads or None) as ref:
            self.matrix = compute_imatrix(ref, self.calibration.texts, [self.calibration.source], hessians=need)
        log(f"importance matrix: {len(self.matrix.sums)} tensors from {self.calibration.tokens} tokens of "
            f"{self.calibration.source} ({time.time() - t0:.1f}s)")
        return self.matrix
