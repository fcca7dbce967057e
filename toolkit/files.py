"""File helpers: atomic writes (nothing half-written ever stands under a final name) and checksums.

Each artifact is written to a temporary name in the same folder, flushed to disk, and renamed into
place only when complete; on any failure (an exception, Ctrl-C) the temporary file is removed.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from slmkit.errors import SlmkitError

TMP_PREFIX = ".slmkit-tmp-"


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` when the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise SlmkitError(f"writing {final.name} produced no data")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, final)
    except OSError as e:
        raise SlmkitError(f"could not write {final}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(final: Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def clean_stale_temps(folder: Path) -> int:
    """Remove temporary files and folders an interrupted run left behind; returns how many."""
    import shutil

    n = 0
    for p in Path(folder).glob(TMP_PREFIX + "*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        n += 1
    return n


def check_writable_folder(path: Path, what: str = "output folder") -> None:
    """One clear error, before any work, when ``path`` cannot become a folder this process writes into (a file is
    in the way, or the nearest existing folder is not writable); creates nothing."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise SlmkitError(f"{path}: cannot be the {what}: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SlmkitError(f"{path}: cannot be the {what}: {probe} is not writable")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
