"""Repeated load / generate / close of artifacts in one process: RSS and open file descriptors over time.

    python -m devtools.leaks ARTIFACT [ARTIFACT ...] [--cycles 200] [--warmup 20]

A host app that reloads models (switching artifacts, device profiles) must not grow. Figures are
taken after a warm-up (allocator pools and lazily loaded libraries settle) and at the end, both as the
kernel reports RSS and after glibc's ``malloc_trim`` hands freed heap pages back: the first includes
memory the allocator keeps for reuse, the second is what is still in use.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import os
import time

from slmkit.errors import run_script
from slmkit.loader import load
from slmkit.memory import current_rss_mb

PROMPT = "<|task:t2i|> <|len:short|> cozy cabin wallpaper <|out|>"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def cycles(path: str, n: int) -> None:
    for _ in range(n):
        with load(path, threads=1) as rt:
            rt.generate(PROMPT, max_new_tokens=8)


def trimmed_rss_mb() -> float:
    """RSS after freed heap pages go back to the kernel (glibc; plain RSS elsewhere)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
    return current_rss_mb()


def measure(path: str, n: int, warmup: int) -> dict:
    cycles(path, warmup)
    gc.collect()
    fds, rss, trimmed, t = open_fds(), current_rss_mb(), trimmed_rss_mb(), time.perf_counter()
    cycles(path, n)
    gc.collect()
    raw_growth = current_rss_mb() - rss
    return {"file": os.path.basename(path), "cycles": n, "seconds": time.perf_counter() - t,
            "rss_start_mb": rss, "rss_growth_mb": raw_growth, "trimmed_growth_mb": trimmed_rss_mb() - trimmed,
            "fd_growth": open_fds() - fds}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+")
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args(argv)
    print("| artifact | cycles | seconds | RSS after warm-up MiB | RSS growth MiB | growth after malloc_trim MiB | "
          "fd growth |")
    print("|---|---|---|---|---|---|---|")
    for path in args.artifacts:
        r = measure(path, args.cycles, args.warmup)
        print(f"| {r['file']} | {r['cycles']} | {r['seconds']:.1f} | {r['rss_start_mb']:.0f} | "
              f"{r['rss_growth_mb']:+.1f} | {r['trimmed_growth_mb']:+.1f} | {r['fd_growth']:+d} |", flush=True)


if __name__ == "__main__":
    run_script(main)
