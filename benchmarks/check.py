"""``slmkit check``: a regression gate over bench reports.

Absolute thresholds apply to every artifact of a report; with a baseline report, the change between the
two is gated too. Thresholds come from (later wins) the defaults below, a TOML or JSON file (``--config``,
or ``slmkit-check.toml`` in the artifact folder, else beside the model), and command-line flags. A file may hold
per-artifact overrides in ``[artifacts."<file name>"]`` tables. Percentages are in percent, rates 0-1.
"""
from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from slmkit.benchmarks.schema import Report, validate_report
from slmkit.errors import UnusableInput

CONFIG_NAME = "slmkit-check.toml"

class Gate(NamedTuple):
    """One absolute threshold on a report field."""
    section: str
    metric: str
    kind: str                   # "max" or "min"
    default: float | None
    sign: float                 # applied to the metric before comparing (-1: a change gated as a drop)
    noise: str | None = None    # the field holding the metric's standard error, when it is sampled


ABSOLUTE = {
    "max_kl": Gate("quality", "mean_kl", "max", 0.05, 1.0),
    "max_p99_kl": Gate("quality", "p99_kl", "max", None, 1.0),
    "max_ppl_increase": Gate("quality", "ppl_change_pct", "max", 5.0, 1.0),
    "min_top1": Gate("quality", "same_top1", "min", 0.90, 1.0),
    "min_greedy_agreement": Gate("quality", "greedy_agreement", "min", None, 1.0),
    "max_relevance_drop": Gate("task", "relevance_change_pct", "max", 6.0, -1.0, noise="relevance_change_se_pct"),
    "max_diversity_drop": Gate("task", "pairwise_distance_change_pct", "max", None, -1.0),
    "max_peak_rss_mb": Gate("memory", "peak_rss_mb", "max", None, 1.0),
}
# Gates on the change from a baseline report, in percent: decode tok/s drop, time-to-first-token rise,
# mean KL rise.
RELATIVE = {"max_latency_regression": 10.0, "max_ttft_regression": None, "max_kl_increase": 10.0}
KL_FLOOR = 1e-5  # KL changes below this are numerical noise, not a regression
NOISE_SE = 2.0  # a sampled metric's breach within this many of its standard errors is not a failure


@dataclass
class Violation:
    artifact: str
    metric: str
    value: float | str
    limit: float | str

    def detail(self) -> str:
        value = f"{self.value:.6g}" if isinstance(self.value, float) else self.value
        limit = f"{self.limit:.6g}" if isinstance(self.limit, float) else self.limit
        return f"{self.metric} {value} (limit {limit})"

    def __str__(self) -> str:
        return f"{self.artifact}: {self.detail()}"


def read_report(path: Path) -> Report:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnusableInput(f"{path}: no such report") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UnusableInput(f"{path}: not a readable JSON report ({e.__class__.__name__})") from None
    try:
        return validate_report(data, str(path))
    except ValueError as e:
        raise UnusableInput(str(e)) from None


def read_config(path: Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if Path(path).suffix == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise UnusableInput(f"{path}: unreadable threshold file ({e})") from None
    _validate(data, str(path), allow_artifacts=True)
    return data


def _validate(values: dict, where: str, allow_artifacts: bool = False) -> None:
    for key, v in values.items():
        if key == "artifacts" and allow_artifacts and isinstance(v, dict):
            for name, sub in v.items():
                if not isinstance(sub, dict):
                    raise UnusableInput(f"{where}: artifacts.{name} must be a table of thresholds")
                _validate(sub, f"{where} [artifacts.{name}]")
            continue
        if key not in ABSOLUTE and key not in RELATIVE:
            raise UnusableInput(f"{where}: unknown threshold {key!r}; valid: {', '.join([*ABSOLUTE, *RELATIVE])}")
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
            raise UnusableInput(f"{where}: {key} must be a non-negative number, got {v!r}")
        if key.startswith("min_") and key in ABSOLUTE and v is not None and v > 1:
            raise UnusableInput(f"{where}: {key} is a rate between 0 and 1, got {v}")


def find_config(report: dict) -> Path | None:
    for folder in (report.get("artifacts_dir"), report.get("model", {}).get("path")):  # the nearer first
        if folder and (Path(folder) / CONFIG_NAME).is_file():
            return Path(folder) / CONFIG_NAME
    return None


def thresholds_for(name: str, config: dict, flags: dict) -> dict:
    base = {k: gate.default for k, gate in ABSOLUTE.items()} | RELATIVE
    general = {k: v for k, v in config.items() if k != "artifacts"}
    per_artifact = config.get("artifacts", {}).get(name, {})
    return base | general | per_artifact | {k: v for k, v in flags.items() if v is not None}


def check_report(report: dict, config: dict | None = None, flags: dict | None = None,
                 baseline: dict | None = None) -> tuple[list[Violation], list[str]]:
    """Every broken threshold, and the names of the artifacts checked."""
    config, flags = config or {}, flags or {}
    _validate({k: v for k, v in flags.items() if v is not None}, "command line")
    if baseline is not None:
        comparable(report, baseline)
    violations, checked = [], []
    old = {r["name"]: r for r in (baseline or {}).get("results", []) if not r.get("error")}
    for row in report["results"]:
        if row.get("is_reference"):
            continue
        name = row["name"]
        checked.append(name)
        if row.get("error"):
            violations.append(Violation(name, "error", row["error"], "runs"))
            continue
        limits = thresholds_for(name, config, flags)
        if row["memory"].get("within_budget") is False:
            violations.append(Violation(name, "peak_rss_mb over the profile budget", float(row["memory"]["peak_rss_mb"]),
                                        float(row["memory"]["budget_mb"])))
        skipped = unmeasured(report)
        for key, gate in ABSOLUTE.items():
            section = row.get(gate.section, {})
            limit, value = limits.get(key), section.get(gate.metric)
            if limit is None or gate.metric in skipped:
                continue
            if not _finite_number(value):
                why = "missing" if value is None else f"not a finite number ({value!r})"
                violations.append(Violation(name, gate.metric, why, float(limit)))
                continue
            value = gate.sign * value
            if not ((gate.kind == "max" and value > limit) or (gate.kind == "min" and value < limit)):
                continue
            if gate.noise and value <= NOISE_SE * section.get(gate.noise, 0.0):
                continue  # within what sampling alone moves it: the sample cannot tell this from noise
            label = gate.metric if gate.sign > 0 else gate.metric.replace("_change_pct", "_drop_pct")
            violations.append(Violation(name, label, float(value), float(limit)))
        if baseline is not None:
            violations.extend(_against_baseline(name, row, old.get(name), limits))
    if baseline is not None:
        new = {r["name"] for r in report["results"]}
        violations.extend(Violation(n, "missing", "absent from the report", "present in the baseline")
                          for n in old if n not in new)
    return violations, checked


def _finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def unmeasured(report: dict) -> set[str]:
    """Metrics bench was told not to measure (``--scorer none``): their gates do not apply."""
    if str(report.get("settings", {}).get("scorer", "")).startswith("none"):
        return {"relevance_change_pct", "pairwise_distance_change_pct"}
    return set()


def comparable(report: dict, baseline: dict) -> None:
    """A baseline is only comparable when measured on the same texts, mode and profile."""
    keys = [("settings", "mode"), ("settings", "texts_source"), ("settings", "scored_tokens"), ("profile", "name")]
    diff = [f"{b}: {baseline.get(a, {}).get(b)} vs {report.get(a, {}).get(b)}" for a, b in keys
            if baseline.get(a, {}).get(b) != report.get(a, {}).get(b)]
    if diff:
        raise UnusableInput(f"the baseline was measured differently ({'; '.join(diff)}); compare like with like")


def _baseline_value(name: str, old: dict, section: str, metric: str) -> float:
    """A baseline figure a change is measured against: positive and finite, or one clear error."""
    value = old.get(section, {}).get(metric)
    if not _finite_number(value) or value <= 0:
        raise UnusableInput(f"the baseline's {name} has {section}.{metric} = {value!r}: a change cannot be measured "
                            "against it (re-run bench for the baseline)")
    return float(value)


def _against_baseline(name: str, row: dict, old: dict | None, limits: dict) -> list[Violation]:
    if old is None:
        return []
    out = []
    lim = limits.get("max_latency_regression")
    if lim is not None:
        drop = 100 * (1 - row["latency"]["decode_tok_s"] / _baseline_value(name, old, "latency", "decode_tok_s"))
        if drop > lim:
            out.append(Violation(name, "decode tok/s drop % vs baseline", drop, float(lim)))
    lim = limits.get("max_ttft_regression")
    if lim is not None:
        rise = 100 * (row["latency"]["ttft_ms"] / _baseline_value(name, old, "latency", "ttft_ms") - 1)
        if rise > lim:
            out.append(Violation(name, "time to first token increase % vs baseline", rise, float(lim)))
    lim = limits.get("max_kl_increase")
    new_kl, old_kl = row["quality"].get("mean_kl"), old["quality"].get("mean_kl")
    if lim is not None and new_kl is not None and old_kl is not None:
        if new_kl > old_kl * (1 + lim / 100) + KL_FLOOR:
            out.append(Violation(name, "mean KL increase % vs baseline", 100 * (new_kl / max(old_kl, 1e-12) - 1),
                                 float(lim)))
    return out
