"""This process's resident memory, as the kernel counts it (Linux /proc; getrusage elsewhere).

``ru_maxrss`` survives ``exec`` on Linux, so a benchmark worker started by a big parent would report
the parent's peak: the per-process high-water mark ``VmHWM`` is read instead where it exists.
"""
from __future__ import annotations

import resource
import sys
from pathlib import Path


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _maxrss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def peak_rss_mb() -> float:
    """Highest resident set size of this process so far, MiB."""
    return _status_mb("VmHWM") or _maxrss_mb()


def current_rss_mb() -> float:
    """Resident set size now, MiB."""
    return _status_mb("VmRSS") or _maxrss_mb()
