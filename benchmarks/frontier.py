"""Size against drift: which artifacts are on the Pareto front of bits per weight and mean KL, and the smallest
one that passes ``slmkit check``'s thresholds within the profile's memory budget.

An artifact is on the front when no other artifact is at most as large (bits per weight, tensor data) and at
most as far from the reference (mean KL), one of the two strictly. The thresholds are check's own: its
defaults, ``slmkit-check.toml`` beside the artifacts or the model, so bench names what check would pass.
"""
from __future__ import annotations

import math
from typing import Any

from slmkit.benchmarks.schema import Report, Result


def point(row: Result) -> tuple[float, float] | None:
    """(bits per weight, mean KL) of a row that ran and has both, finite."""
    if row.get("error") or row.get("is_reference"):
        return None
    bits, kl = row.get("bits_per_weight"), row.get("quality", {}).get("mean_kl")
    if bits is None or kl is None or not (math.isfinite(bits) and math.isfinite(kl)):
        return None
    return float(bits), float(kl)


def pareto(rows: list[Result]) -> list[str]:
    """Names of the rows on the (bits per weight, mean KL) Pareto front, smallest first."""
    points = {r["name"]: p for r in rows if (p := point(r)) is not None}
    front = [n for n, (b, k) in points.items()
             if not any(b2 <= b and k2 <= k and (b2, k2) != (b, k) for m, (b2, k2) in points.items() if m != n)]
    return sorted(front, key=lambda n: points[n])


def frontier(report: Report, config: dict | None = None) -> dict[str, Any]:
    """The report's frontier section: the Pareto front, what check passes, and the smallest passing artifact
    (by bits per weight, then bytes), or why there is none."""
    from slmkit.benchmarks.check import check_report, find_config, read_config
    from slmkit.errors import SlmkitError

    source = "check's defaults"
    if config is None:
        path = find_config(report)
        try:
            config = read_config(path) if path is not None else {}
        except SlmkitError as e:  # bench's figures stand; check will say the same when run
            return {"pareto": pareto(report["results"]), "passing": [], "smallest_passing": None, "thresholds": str(e)}
        source = str(path) if path is not None else source
    violations, checked = check_report(report, config)
    failing = {v.artifact for v in violations}
    passing = [r for r in report["results"] if r["name"] in checked and r["name"] not in failing and not r.get("error")]
    passing.sort(key=lambda r: (r.get("bits_per_weight") or math.inf, r["bytes"]))
    return {"pareto": pareto(report["results"]), "passing": [r["name"] for r in passing],
            "smallest_passing": passing[0]["name"] if passing else None,
            "thresholds": source}
