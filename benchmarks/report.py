"""The bench report's files: ``report.json``, ``report.md``, ``report.csv``.

The report's fields are defined once, as typed structures, in ``slmkit.benchmarks.schema``.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from slmkit.benchmarks.schema import Report, Result
from slmkit.files import write_text_atomic
from slmkit.runtimes.sampling import Sampling


def _f(x: float | None, fmt: str, scale: float = 1.0) -> str:
    return "" if x is None else format(x * scale, fmt)


SPEED_COLUMNS = [
    ("artifact", lambda r: r["label"]),
    ("MiB", lambda r: _f(r["bytes"], ".1f", 2**-20)),
    ("bits/w", lambda r: _f(r.get("bits_per_weight"), ".2f")),
    ("load s", lambda r: _f(r["memory"]["load_s"], ".2f")),
    ("RSS MiB", lambda r: _f(r["memory"]["rss_after_load_mb"], ".0f")),
    ("peak MiB", lambda r: _f(r["memory"]["peak_rss_mb"], ".0f") + ("" if r["memory"]["within_budget"] is not False
                                                                    else " (over budget)")),
    ("TTFT ms", lambda r: _f(r["latency"]["ttft_ms"], ".1f")),
    ("prefill tok/s (32/128)", lambda r: "/".join(f"{v:.0f}" for v in r["latency"]["prefill_tok_s"].values())),
    ("decode tok/s", lambda r: _f(r["latency"]["decode_tok_s"], ".0f")),
    ("p50/p95 ms", lambda r: f"{r['latency']['decode_ms_p50']:.2f}/{r['latency']['decode_ms_p95']:.2f}"),
    ("× ref", lambda r: _f(r["latency"].get("speedup_vs_reference"), ".1f")),
    ("n=4 ×", lambda r: _f(r["latency"].get("candidates_speedup"), ".2f")),
    ("BW %", lambda r: _f(r["bandwidth"]["fraction_of_measured"], ".0f", 100)),
]
QUALITY_COLUMNS = [
    ("artifact", lambda r: r["label"]),
    ("ppl", lambda r: _f(r["quality"]["ppl"], ".4f")),
    ("Δppl %", lambda r: _f(r["quality"].get("ppl_change_pct"), "+.2f")),
    ("mean KL", lambda r: _f(r["quality"].get("mean_kl"), ".5f")),
    ("p99 KL", lambda r: _f(r["quality"].get("p99_kl"), ".4f")),
    ("max KL", lambda r: _f(r["quality"].get("max_kl"), ".3f")),
    ("same top-1 %", lambda r: _f(r["quality"].get("same_top1"), ".1f", 100)),
    ("RMS Δp %", lambda r: _f(r["quality"].get("rms_delta_p"), ".2f", 100)),
    ("greedy = ref %", lambda r: _f(r["quality"].get("greedy_agreement"), ".0f", 100)),
    ("relevance", lambda r: _f(r["task"].get("relevance"), ".4f")),
    ("Δrel %", lambda r: _f(r["task"].get("relevance_change_pct"), "+.2f")),
    ("pairwise dist", lambda r: _f(r["task"].get("pairwise_distance"), ".4f")),
    ("Δdiv %", lambda r: _f(r["task"].get("pairwise_distance_change_pct"), "+.2f")),
    ("distinct-2", lambda r: _f(r["task"].get("distinct_2"), ".3f")),
]


def _table(rows: list[Result], columns: list) -> str:
    lines = ["| " + " | ".join(c for c, _ in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['label']} | error: {r['error']} |" + " |" * (len(columns) - 2))
        else:
            lines.append("| " + " | ".join(get(r) for _, get in columns) + " |")
    return "\n".join(lines)


def markdown(report: Report) -> str:
    m, p, s = report["machine"], report["profile"], report["settings"]
    budget = f", memory budget {p['memory_budget_mb']:.0f} MiB" if p["memory_budget_mb"] else ""
    sampling = ", ".join(f"{k} {s[k]}" for k in Sampling.__dataclass_fields__ if k in s)
    head = [f"# slmkit bench: {report['model']['name']}, profile {p['name']}",
            "",
            f"{m['cpu']}, {m['physical_cores']} physical cores, {p['threads']} threads{budget}; measured memory "
            f"bandwidth {m['memory_bandwidth_gbs']:.1f} GB/s. slmkit {report['slmkit_version']}, {report['created']}, "
            f"{report['seconds']:.0f} s, {s['mode']} mode.",
            "",
            f"Quality: {s['scored_tokens']} tokens of {s['texts_source']} scored by every runtime (same ids); "
            f"greedy agreement over {s['greedy_prompts']} prompts x {s['greedy_tokens']} tokens; relevance and "
            f"diversity over {s['sampled_intents']} intents x {s['candidates']} candidates ({sampling}), "
            f"scorer {s['scorer']}. Changes are against the fp16 reference (transformers).",
            "", "## Memory and latency", "", _table(report["results"], SPEED_COLUMNS),
            "", "## Quality drift against the fp16 reference", "", _table(report["results"], QUALITY_COLUMNS), ""]
    return "\n".join(head + _frontier(report))


def _frontier(report: Report) -> list[str]:
    """The size-against-drift section: every artifact by bits per weight, the Pareto front marked, what passes."""
    f = report.get("frontier")
    if not f:
        return []
    rows = sorted((r for r in report["results"] if not r.get("is_reference") and not r.get("error")),
                  key=lambda r: (r.get("bits_per_weight") or float("inf"), r["bytes"]))
    lines = ["## Size against drift", "", "| artifact | bits/w | mean KL | same top-1 % | Pareto front | passes check |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        q = r["quality"]
        lines.append(f"| {r['label']} | {_f(r.get('bits_per_weight'), '.2f')} | {_f(q.get('mean_kl'), '.5f')} | "
                     f"{_f(q.get('same_top1'), '.1f', 100)} | {'yes' if r['name'] in f['pareto'] else ''} | "
                     f"{'yes' if r['name'] in f['passing'] else 'no'} |")
    best = next((r["label"] for r in rows if r["name"] == f["smallest_passing"]), None)
    lines += ["", (f"Smallest artifact that passes the thresholds ({f['thresholds']}) within the profile's memory "
                   f"budget: **{best}**." if best else
                   f"No artifact passes the thresholds ({f['thresholds']}) within the profile's memory budget."), ""]
    return lines


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "kernel":
            out.update(_flatten(v, key + "."))
        elif not isinstance(v, (dict, list)):
            out[key] = v
    return out


def to_csv(report: Report) -> str:
    rows = [_flatten(r) for r in report["results"]]
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def finite(value: Any) -> Any:
    """``value`` with every float that is not finite (NaN, infinity) replaced by None: JSON has no NaN, and a
    missing figure is what ``slmkit check`` fails as such."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_report(report: Report, out: Path) -> list[Path]:
    """report.json / .md / .csv written atomically into ``out`` (no NaN in the JSON); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"report.json": json.dumps(finite(report), indent=2, allow_nan=False) + "\n", "report.md": markdown(report),
             "report.csv": to_csv(report)}
    for name, text in files.items():
        write_text_atomic(out / name, text)
    return [out / n for n in files]
