"""``slmkit bench``: every artifact of a model against the fp16 reference, each in its own process.

Given a Hugging Face GPT-2 folder (the demo model when none), the requested artifacts are quantized
into the artifact folder unless its manifest already holds them for this exact source; given an
artifact folder, its manifest's artifacts are benchmarked and its source model is the reference.
The parent only plans, launches and aggregates: machine facts, task-level scoring and the report.
"""
from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from slmkit.benchmarks.frontier import frontier
from slmkit.benchmarks.launcher import launch
from slmkit.benchmarks.machine import machine_facts
from slmkit.benchmarks.scenario import Scenario
from slmkit.benchmarks.schema import SCHEMA, Report, Result
from slmkit.benchmarks.task_quality import get_scorer, task_metrics
from slmkit.errors import SlmkitError
from slmkit.converters.formats import FORMATS, split_quants
from slmkit.manifest import MANIFEST, read_manifest, verify_artifact
from slmkit.model_folder import ModelFolder, open_model_folder
from slmkit.profiles import get_profile
from slmkit.version import __version__
from slmkit.workload import CHECK_TEXTS, Workload

REFERENCE = "reference"

# Sizes of the two modes: held-out texts scored, greedy prompts, intents sampled, timing repetitions.
MODES = {
    "full": {"texts": 108, "greedy": 54, "intents": 108, "reps": 3, "decode_tokens": 64},
    "quick": {"texts": 16, "greedy": 9, "intents": 6, "reps": 1, "decode_tokens": 32},
}


@dataclass
class BenchOptions:
    device: str = "cpu"
    formats: tuple[str, ...] = FORMATS
    quants: tuple[str, ...] | None = None  # None: default types when quantizing, all present otherwise
    quick: bool = False
    workload: Workload | None = None  # what quality is measured on (the caller's; see slmkit.workload)
    scorer: str = "minilm"
    threads: int | None = None
    reps: int | None = None  # timing repetitions; default by mode
    verify: bool = True
    model: str | None = None  # the reference, when benchmarking an artifact folder
    demo_calibration: Callable[[], list[str]] | None = None  # the demo's calibration texts (the caller's)


Progress = Callable[[Iterable, str], Iterator]


def ensure_artifacts(source: ModelFolder, folder: Path, opts: BenchOptions, log: Callable[[str], None]) -> None:
    """Quantize the requested types that the folder's manifest does not hold for this source."""
    from slmkit.converters.gguf_quantize import DEFAULT_QUANTS
    from slmkit.converters.onnx_quantize import DEFAULT_PRECISIONS

    wanted = split_quants(opts.quants) if opts.quants else {"gguf": list(DEFAULT_QUANTS),
                                                             "onnx": list(DEFAULT_PRECISIONS)}
    manifest = read_manifest(folder)
    same_source = manifest.get("source", {}).get("sha256") == source.sha256()
    have = {(e["format"], e["quant"]) for n, e in manifest.get("artifacts", {}).items()
            if same_source and (folder / n).is_file()}
    for fmt in opts.formats:
        missing = [q for q in wanted[fmt] if (fmt, q) not in have]
        if not missing:
            continue
        log(f"quantizing {source.name} to {fmt} {','.join(missing)} in {folder}")
        if fmt == "gguf":
            from slmkit.converters.gguf_pipeline import convert_gguf

            convert_gguf(source, missing, folder, opts.threads or 0, log=lambda _m: None, texts=check_texts(opts))
        else:
            from slmkit.converters.onnx_pipeline import convert_onnx

            convert_onnx(source, missing, folder, opts.threads or 0, log=lambda _m: None, texts=check_texts(opts))


def select_artifacts(folder: Path, opts: BenchOptions) -> list[tuple[str, dict]]:
    manifest = read_manifest(folder)
    wanted = split_quants(opts.quants) if opts.quants else None
    chosen = []
    for name, e in manifest.get("artifacts", {}).items():
        if e["format"] in opts.formats and (wanted is None or e["quant"] in wanted[e["format"]]):
            if not (folder / name).is_file():
                raise SlmkitError(f"{folder / name}: listed in the manifest but missing")
            chosen.append((name, e))
    if opts.verify:
        for name, e in chosen:
            verify_artifact(folder / name, e)
    if not chosen:
        raise SlmkitError(f"{folder}: no artifact of format {'/'.join(opts.formats)}"
                          f"{' and type ' + ','.join(opts.quants) if opts.quants else ''} in the manifest")
    return sorted(chosen, key=lambda ne: (ne[1]["format"], -ne[1]["bytes"]))


def resolve(target: str | None, artifacts_dir: Path | None, opts: BenchOptions,
            log: Callable[[str], None]) -> tuple[ModelFolder, Path]:
    """The reference model folder and the artifact folder (quantized first when needed).

    An artifact folder (TARGET, or ``--artifacts`` without TARGET) is measured against its manifest's source
    model (or ``--model``); a model (TARGET, ``--model``, or the demo) is quantized into ``--artifacts`` or
    ``out/<name>``. A folder is never written into when it holds another model's artifacts or files that
    are not artifacts; artifacts of a model that changed since (same folder, new weights) are re-quantized.
    """
    path = Path(target) if target else None
    if path is not None and path.is_dir() and (path / MANIFEST).is_file():
        if artifacts_dir is not None and artifacts_dir.resolve() != path.resolve():
            raise SlmkitError(f"two artifact folders: {path} and --artifacts {artifacts_dir}; give one")
        folder = path
    elif path is None and artifacts_dir is not None and (artifacts_dir / MANIFEST).is_file():
        folder = artifacts_dir
    else:
        if path is not None and opts.model and Path(opts.model).resolve() != path.resolve():
            raise SlmkitError(f"--model names the fp16 reference of an artifact folder, but {target} is a model "
                              "folder: give one model")
        model = open_model_folder(target if target is not None else opts.model)
        check_workload_fits(model, opts)
        folder = artifacts_dir or Path("out") / model.name
        _check_writable(folder, model)
        ensure_artifacts(model, folder, opts, log)
        return model, folder
    recorded = read_manifest(folder).get("source", {})
    source = opts.model or recorded.get("path")
    if not source or not Path(source).is_dir():
        raise SlmkitError(f"{folder}: its source model {source} is not here; pass the fp16 model with --model")
    model = open_model_folder(source)
    check_workload_fits(model, opts)
    if model.sha256() != recorded.get("sha256"):
        if Path(recorded.get("path") or "").resolve() != model.path.resolve():
            raise SlmkitError(f"{folder}: its artifacts were converted from another model than {model.path}")
        log(f"{model.path} changed since {folder}'s artifacts were written: quantizing again")
        ensure_artifacts(model, folder, opts, log)
    return model, folder


def _check_writable(folder: Path, model: ModelFolder) -> None:
    """Refuse to quantize into a folder that holds another model's artifacts or other files."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    if not (folder / MANIFEST).is_file():
        raise SlmkitError(f"{folder} is not empty and holds no {MANIFEST}: not an artifact folder, so bench will not "
                          "write artifacts into it (give an empty or new folder)")
    recorded = read_manifest(folder).get("source", {}).get("path")
    if recorded and Path(recorded).resolve() != model.path.resolve():
        raise SlmkitError(f"{folder} holds artifacts of {recorded}, not of {model.path}: bench them with "
                          f"'slmkit bench {folder}', or give another --artifacts folder")


def workload_of(opts: BenchOptions) -> Workload:
    if opts.workload is None:
        raise SlmkitError("no workload: pass the texts and prompts to measure quality on (BenchOptions.workload)")
    return opts.workload


def check_texts(opts: BenchOptions) -> list[str]:
    """The texts the converters' checks use when bench quantizes: the workload's first ones."""
    return list(workload_of(opts).texts[:CHECK_TEXTS])


def check_workload_fits(model: ModelFolder, opts: BenchOptions) -> None:
    """The demo's held-out texts and prompts are written in its control tokens: refuse them (before any
    work) for a model whose tokenizer lacks those tokens."""
    from slmkit.prompts import has_control_tokens
    from slmkit.tokenizer import TextTokenizer

    parts = [p for p in ("texts", "prompts") if p in workload_of(opts).demo]
    if parts and not has_control_tokens(TextTokenizer.from_folder(model.path)):
        flags = " and ".join(f"--{p} FILE" for p in parts)
        raise SlmkitError(f"{model.name} has no demo control tokens, so the demo's held-out {' and '.join(parts)} "
                          f"do not fit it: pass {flags} (one per line) to measure on your own")


def build_scenario(model: ModelFolder, opts: BenchOptions, threads: int) -> tuple[Scenario, dict, list[str]]:
    from slmkit.tokenizer import TextTokenizer

    size = MODES["quick" if opts.quick else "full"]
    work = workload_of(opts)
    profile = get_profile(opts.device)
    n_ctx = min(model.shape.n_positions, profile.max_context or model.shape.n_positions)
    texts = work.texts[:size["texts"]]
    tok = TextTokenizer.from_folder(model.path)
    text_ids = [ids[:n_ctx] for ids in (tok.encode(t) for t in texts) if len(ids) >= 2]
    if not text_ids:
        raise SlmkitError("no text is at least two tokens long")
    greedy = list(work.greedy_prompts[:size["greedy"]])
    sample = list(work.sampled[:size["intents"]])
    # the parent verifies checksums before launching (fail fast); each worker loads as slmkit.load does by
    # default (sha256 against the manifest; with --no-verify, ONNX files then go through onnx.checker), so
    # its load time and peak memory are what an app meets
    sc = Scenario(device=opts.device, threads=threads, verify=opts.verify, text_ids=text_ids, greedy_prompts=greedy,
                  sample_prompts=[p for p, _ in sample], reps=opts.reps or size["reps"],
                  decode_tokens=size["decode_tokens"])
    settings = {"mode": "quick" if opts.quick else "full", "texts": len(text_ids), "texts_source": work.source,
                "prompts_source": work.prompts_source,
                "scored_tokens": sum(len(i) - 1 for i in text_ids), "greedy_prompts": len(greedy),
                "greedy_tokens": sc.greedy_tokens, "sampled_intents": len(sample), "candidates": sc.candidates,
                "sample_tokens": sc.sample_tokens, **sc.sampling, "seed": sc.seed,
                "prompt_lengths": list(sc.prompt_lengths), "decode_tokens": sc.decode_tokens, "reps": sc.reps,
                "verify_sha256": opts.verify}
    return sc, settings, [intent for _, intent in sample]


def _entry(name: str, meta: dict, raw: dict) -> Result:
    """One result row of the report from a worker's raw result."""
    row: Result = {"name": name, **meta, "error": raw.get("error")}  # type: ignore[typeddict-item]
    if row["error"]:
        return row
    info = raw["info"]
    row.update(backend=info.get("backend"), threads=info.get("threads"), n_ctx=info.get("n_ctx"),
               bits_per_weight=meta.get("bits_per_weight") or info.get("bits_per_weight"),
               kernel={k: info[k] for k in ("optimization", "block_size", "accuracy_level", "head_bits", "embedding",
                                            "tensor_types") if k in info},
               memory=raw["memory"], latency=raw["latency"], quality=raw["quality"])
    return row


def relative_changes(rows: list[Result], ref: Result, greedy: dict[str, list[str]]) -> None:
    """Add each artifact's change against the reference: perplexity, greedy agreement (``greedy``: each
    row's greedy continuations by name), task metrics, speed."""
    for row in rows:
        if row.get("error") or row is ref:
            continue
        q, rq = row["quality"], ref["quality"]
        q["ppl_change_pct"] = 100 * (q["ppl"] / rq["ppl"] - 1)
        ours, theirs = greedy[row["name"]], greedy[ref["name"]]
        q["greedy_agreement"] = sum(a == b for a, b in zip(ours, theirs)) / max(1, len(theirs))
        t, rt = row["task"], ref["task"]
        for key in ("relevance", "pairwise_distance", "distinct_1", "distinct_2"):
            if key in t and rt.get(key):
                t[f"{key}_change_pct"] = 100 * (t[key] / rt[key] - 1)  # type: ignore[literal-required]
        ours, theirs = t.get("relevance_per_intent"), rt.get("relevance_per_intent")
        if ours and theirs and len(ours) == len(theirs) > 1 and rt.get("relevance"):
            # what sampling alone moves the change by: the standard error of the per-intent differences
            # (paired: the same intents, so how hard each intent is cancels out), in percent
            diff = [a - b for a, b in zip(ours, theirs)]
            mean = sum(diff) / len(diff)
            se = math.sqrt(sum((d - mean) ** 2 for d in diff) / (len(diff) - 1) / len(diff))
            t["relevance_change_se_pct"] = 100 * se / rt["relevance"]
        row["latency"]["speedup_vs_reference"] = row["latency"]["decode_tok_s"] / ref["latency"]["decode_tok_s"]


def scored_texts(opts: BenchOptions) -> list[str]:
    """The texts the scenario scores (as :func:`build_scenario` takes them), for the calibration check."""
    return list(workload_of(opts).texts[:MODES["quick" if opts.quick else "full"]["texts"]])


def check_calibration_overlap(artifacts: list[tuple[str, dict]], texts: list[str], log: Callable[[str], None],
                              demo_texts: Callable[[], list[str]] | None) -> None:
    """Refuse, in one line, to score calibrated artifacts on texts they were calibrated on; say so when a
    calibration file is no longer there to compare with."""
    from slmkit.converters.calibration import DEMO, overlap, read_texts, texts_sha256

    scored = set(texts)
    for name, e in artifacts:
        cal = e.get("calibration") or {}
        source = cal.get("source")
        if not source or source.startswith("imatrix file"):
            continue
        path = Path(source)
        if (source == DEMO and demo_texts is None) or (source != DEMO and not path.is_file()):
            log(f"note: {name} was calibrated on {source}, which is not here: its overlap with the scored texts is unchecked")
            continue
        calibration = demo_texts() if source == DEMO else read_texts(path)
        if source != DEMO and texts_sha256(calibration) != cal.get("sha256"):
            log(f"note: {source} changed since {name} was calibrated on it: its overlap with the scored texts is unchecked")
            continue
        shared = overlap(calibration, scored)
        if shared:
            raise SlmkitError(f"{name} was calibrated on {len(shared)} of the texts bench would score (first: "
                              f"{shared[0][:50]!r}): score on other texts (--texts FILE)")


def run_bench(target: str | None, opts: BenchOptions, artifacts_dir: Path | None = None,
              progress: Progress = lambda it, label: iter(it), log: Callable[[str], None] = print) -> Report:
    """Benchmark and return the report (see ``slmkit.benchmarks.schema``)."""
    started = time.time()
    profile = get_profile(opts.device)
    threads = opts.threads or profile.thread_count()
    scorer = get_scorer(opts.scorer)  # fail early on a bad scorer, before minutes of work
    model, folder = resolve(target, artifacts_dir, opts, log)
    artifacts = select_artifacts(folder, opts)
    sc, settings, intents = build_scenario(model, opts, threads)
    machine = machine_facts(threads)

    jobs = [(REFERENCE, str(model.path), {"label": "fp16 reference", "format": "hf", "quant": "fp16",
                                          "file": str(model.weights), "bytes": model.weights.stat().st_size,
                                          "weight_bytes": 4 * model.n_params, "is_reference": True})]
    check_calibration_overlap(artifacts, scored_texts(opts), log, opts.demo_calibration)
    for name, e in artifacts:
        cal = e.get("calibration")
        jobs.append((name, str(folder / name), {"label": f"{e['format']} {e['quant']}{' (calibrated)' if cal else ''}",
                                                "format": e["format"], "quant": e["quant"], "file": str(folder / name),
                                                "bytes": e["bytes"], "weight_bytes": e["bytes"],
                                                "bits_per_weight": e.get("bits_per_weight"), "sha256": e.get("sha256"),
                                                "calibration": cal, "is_reference": False}))
    rows: list[Result] = []
    outputs: dict[str, dict[str, list]] = {}  # each row's generated texts, kept out of the report
    with tempfile.TemporaryDirectory(prefix="slmkit-bench-") as scratch:
        ref_logits = Path(scratch) / "reference_logits.npy"
        for name, path, meta in progress(jobs, "benchmarking"):
            is_ref = name == REFERENCE
            raw = launch(path, sc, Path(scratch), f"job{len(rows)}", reference_logits=None if is_ref else ref_logits,
                         write_logits=ref_logits if is_ref else None)
            if is_ref and raw.get("error"):
                raise SlmkitError(f"the fp16 reference failed: {raw['error']}")
            row = _entry(name, meta, raw)
            if is_ref and not row["error"]:
                row["memory"]["within_budget"] = None  # the reference is what artifacts replace, not one to ship
            if not row["error"]:
                outputs[name] = raw["outputs"]
            rows.append(row)
    for row in progress([r for r in rows if not r["error"]], "scoring outputs"):
        row["task"] = task_metrics(intents, outputs[row["name"]]["sampled"], scorer)
        mem_bw = row["weight_bytes"] * row["latency"]["decode_tok_s"] / 1e9
        row["bandwidth"] = {"decode_gbs": mem_bw, "fraction_of_measured": mem_bw / machine["memory_bandwidth_gbs"]}
    relative_changes(rows, rows[0], {name: o["greedy"] for name, o in outputs.items()})
    report: Report = {"schema": SCHEMA, "slmkit_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(["slmkit", *sys.argv[1:]]) if sys.argv and "slmkit" in sys.argv[0] else None,
            "seconds": round(time.time() - started, 1),
            "model": {"name": model.name, "path": str(model.path.resolve()), "sha256": model.sha256()},
            "artifacts_dir": str(folder.resolve()),
            "profile": {"name": profile.name, "threads": threads, "max_context": profile.max_context,
                        "batch": profile.batch, "memory_budget_mb": profile.memory_budget_mb},
            "settings": {**settings, "scorer": scorer.name if scorer else "none (distinct-n only)"},
            "machine": {**machine, "pid_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None},
            "results": rows}
    report["frontier"] = frontier(report)
    return report
