"""The bench report's schema (``slmkit.bench/1``), shared by bench, report, check and plots.

The typed structures below are the report as ``report.json`` holds it; :func:`validate_report` checks
a report read back from disk against them, so a hand-edited or truncated report is one clear error
naming the field, not a KeyError deep in ``check``. Fractions are 0-1; ``*_change_pct`` are percent
changes against the fp16 reference. A new schema version is only needed when a field changes meaning
or goes away; fields may be added.
"""
from __future__ import annotations

from typing import Any, TypedDict

SCHEMA = "slmkit.bench/1"


class Memory(TypedDict, total=False):
    load_s: float
    rss_after_load_mb: float
    peak_rss_mb: float
    budget_mb: float | None
    within_budget: bool | None


class Latency(TypedDict, total=False):
    ttft_ms: float
    prefill_tok_s: dict[str, float]         # prompt length -> tokens/s
    decode_ms_p50: float
    decode_ms_p95: float
    decode_tok_s: float
    candidates: int
    batched_decode: bool
    single_tok_s: float
    candidates_tok_s: float
    candidates_speedup: float               # n sampled candidates in one call against one sequence
    speedup_vs_reference: float


class Quality(TypedDict, total=False):
    tokens: int
    ppl: float
    ppl_change_pct: float
    mean_kl: float
    median_kl: float
    p99_kl: float
    max_kl: float
    same_top1: float
    rms_delta_p: float
    greedy_agreement: float


class Task(TypedDict, total=False):
    relevance: float
    relevance_per_intent: list[float]       # mean relevance of each intent's candidates
    relevance_change_se_pct: float          # standard error of the change (paired over intents)
    pairwise_distance: float
    distinct_1: float
    distinct_2: float
    relevance_change_pct: float
    pairwise_distance_change_pct: float
    distinct_1_change_pct: float
    distinct_2_change_pct: float


class Bandwidth(TypedDict):
    decode_gbs: float                       # weight bytes x decode tokens/s
    fraction_of_measured: float


class Result(TypedDict, total=False):
    """One runtime's row: the fp16 reference first (``is_reference``), then each artifact."""
    name: str                               # artifact file name, or "reference"
    label: str
    format: str
    quant: str
    file: str
    bytes: int
    weight_bytes: int
    bits_per_weight: float | None
    sha256: str | None
    is_reference: bool
    calibration: dict[str, Any] | None      # how the artifact was calibrated (manifest), None: round-to-nearest
    error: str | None                       # why it could not run; the sections below are then absent
    backend: str
    threads: int
    n_ctx: int
    kernel: dict[str, Any]
    memory: Memory
    latency: Latency
    quality: Quality
    task: Task
    bandwidth: Bandwidth


class Report(TypedDict):
    schema: str
    slmkit_version: str
    created: str
    command: str | None
    seconds: float
    model: dict[str, str]                   # name, path, sha256 of the reference
    artifacts_dir: str
    profile: dict[str, Any]                 # name, threads, max_context, batch, memory_budget_mb
    settings: dict[str, Any]                # workload sizes and source, sampling, timing settings, scorer
    machine: dict[str, Any]                 # cpu, cores, memory, os, library versions, kernels, bandwidth
    results: list[Result]
    frontier: dict[str, Any]                # pareto (names), passing, smallest_passing, thresholds (frontier.py)


# What every row that ran must hold, per section, for check, report and plots to read it.
REQUIRED = {
    "memory": ("load_s", "rss_after_load_mb", "peak_rss_mb", "within_budget"),
    "latency": ("ttft_ms", "prefill_tok_s", "decode_ms_p50", "decode_ms_p95", "decode_tok_s"),
    "quality": ("ppl",),
    "task": (),
}
REQUIRED_ROW = ("name", "label", "format", "quant", "bytes")


def validate_report(data: Any, where: str) -> Report:
    """``data`` as a Report, or ValueError naming the first missing or mistyped field."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{where}: not a bench report (schema {SCHEMA} expected)")
    results = data.get("results")
    if not isinstance(results, list) or not results:
        raise ValueError(f"{where}: the report has no results")
    for i, row in enumerate(results):
        if not isinstance(row, dict):
            raise ValueError(f"{where}: results[{i}] is not an object")
        for key in REQUIRED_ROW:
            if key not in row:
                raise ValueError(f"{where}: results[{i}] lacks {key!r}")
        if row.get("error"):
            continue
        for section, keys in REQUIRED.items():
            values = row.get(section)
            if not isinstance(values, dict):
                raise ValueError(f"{where}: results[{i}] ({row['name']}) lacks the {section!r} section")
            for key in keys:
                if key not in values:
                    raise ValueError(f"{where}: results[{i}] ({row['name']}) lacks {section}.{key}")
            for key, v in values.items():
                if v is not None and not isinstance(v, (int, float, bool, dict, list)):
                    raise ValueError(f"{where}: results[{i}] ({row['name']}) {section}.{key} has type "
                                     f"{type(v).__name__}")
    return data  # type: ignore[return-value]
