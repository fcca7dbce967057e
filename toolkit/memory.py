"""This process's resident memory, as the kernel counts it: Linux /proc, else getrusage (macOS and other
Unixes), else psutil (Windows, which has no ``resource`` module); 0.0 when none is available.

``ru_maxrss`` survives ``exec`` on Linux, so a benchmark worker started by a big parent would report
the parent's peak: the per-process high-water mark ``VmHWM`` is read instead where it exists.
"""
from __future__ import annotations

import sys
from pathlib import Path

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _maxrss_mb() -> float:
    if resource is not None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere
    try:
        import psutil
    except ImportError:
        return 0.0
    info = psutil.Process().memory_info()
    return getattr(info, "peak_wset", info.rss) / 2**20  # Windows keeps the peak working set


def peak_rss_mb() -> float:
    """Highest resident set size of this process so far, MiB."""
    return _status_mb("VmHWM") or _maxrss_mb()


def current_rss_mb() -> float:
    """Resident set size now, MiB."""
    return _status_mb("VmRSS") or _maxrss_mb()
