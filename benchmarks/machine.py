"""Facts about the machine a benchmark runs on, and its memory bandwidth measured on the spot.

Decode at batch 1 reads every weight once per token, so a runtime's decode speed is bounded by memory
bandwidth: ``weight bytes x tok/s`` against the measured figure says how close a backend gets.
"""
from __future__ import annotations

import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np

from slmkit.profiles import physical_cores

LIBRARIES = ("slmkit", "numpy", "llama_cpp_python", "gguf", "onnxruntime", "onnx", "torch", "transformers",
             "tokenizers")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def total_memory_mb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return out


def memory_bandwidth_gbs(threads: int, mib: int = 256, reps: int = 5) -> float:
    """Copy bandwidth (bytes read + written per second, GB/s) of ``threads`` threads over a ``mib``
    buffer, best of ``reps`` (numpy releases the GIL while copying)."""
    n = mib * 2**20 // 8
    src, dst = np.ones(n), np.empty(n)
    edges = np.linspace(0, n, threads + 1, dtype=np.int64)
    spans = list(zip(edges[:-1], edges[1:]))
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(reps):
            t = time.perf_counter()
            list(pool.map(lambda s: np.copyto(dst[s[0]:s[1]], src[s[0]:s[1]]), spans))
            best = min(best, time.perf_counter() - t)
    return 2 * src.nbytes / best / 1e9


def kernel_facts() -> dict[str, str]:
    """What the native backends were built for (CPU features llama.cpp's kernels use; onnxruntime's providers)."""
    out = {}
    try:
        import llama_cpp

        out["llama_cpp"] = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    except ImportError:
        pass
    try:
        import onnxruntime

        out["onnxruntime"] = ", ".join(onnxruntime.get_available_providers())
    except ImportError:
        pass
    return out


def machine_facts(threads: int) -> dict:
    return {"cpu": cpu_model(), "physical_cores": physical_cores(), "logical_cores": os.cpu_count(),
            "memory_mb": total_memory_mb(), "os": platform.platform(), "python": platform.python_version(),
            "libraries": library_versions(), "kernels": kernel_facts(), "threads": threads,
            "memory_bandwidth_gbs": round(memory_bandwidth_gbs(threads), 2),
            "memory_bandwidth_method": f"numpy copy of 256 MiB on {threads} threads, best of 5 (read + write)"}
