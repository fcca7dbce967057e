"""GPT-2 folder → checked ONNX artifacts (fp32 / fp16 / int8 / int8dyn / int4), tokenizer and manifest in one folder.

The fp32 graph is checked first (onnx.checker; logits match the fp16 reference; cached decoding equals
a full forward pass), then each requested precision is written and checked with onnx.checker and the
cache test. With calibration texts, int8 and int4 are error-compensated on the fp16 reference's inputs.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from slmkit.converters.calibration import Importance
from slmkit.converters.checks import (cache_consistency, fidelity, onnx_checker, require,
                                      tokenizer_parity, transformers_encoder)
from slmkit.converters.onnx_genai import GENAI_CONFIG, write_genai_config
from slmkit.converters.onnx_quantize import CALIBRATED, Int4Options, write_precision
from slmkit.converters.output import Conversion, artifact_entry
from slmkit.manifest import read_manifest, update_manifest
from slmkit.model_folder import ModelFolder


def artifact_name(folder: ModelFolder, precision: str) -> str:
    return f"{folder.name}-{precision}.onnx"


def convert_onnx(folder: ModelFolder, precisions: list[str], out: Path, threads: int = 0,
                 int4: Int4Options | None = None, log: Callable[[str], None] = print, *,
                 texts: Sequence[str], importance: Importance | None = None) -> dict:
    """Write and check every precision (logits against the fp16 reference on ``texts``); returns the
    updated manifest. ``importance`` with calibration texts: int8 and int4 are error-compensated."""
    texts = list(texts)
    importance = importance or Importance()
    if int4 is not None and "int4" in precisions:
        int4.check(folder)  # before anything is written
    fp32 = out / artifact_name(folder, "fp32")
    with Conversion(folder, out, fp32, "fp32" in precisions, "fp32") as run:
        t0 = time.time()
        settings = write_precision(folder, "fp32", run.source)
        if run.keep:
            run.landing.placed(fp32)  # removed again if its checks fail
        checks = check_source(folder, run.source, run.label, texts, threads)
        log(f"checks passed: onnx.checker; transformers tokenizes as slmkit does; fp32 logits max |Δ| "
            f"{checks['fidelity_fp32']['max_abs_diff']:.5f} vs the fp16 reference; cached decode equals full "
            f"forward (max |Δ| {checks['cache_fp32']['max_abs_diff']:.1e})")
        if run.keep:
            record(folder, run, fp32, "fp32", settings, t0, log)
        calibrated = importance.calibration is not None and bool(set(precisions) & set(CALIBRATED))
        hessians = importance.ensure_matrix(folder, threads, log, hessians=True).hessians if calibrated else None
        for precision in precisions:
            if precision != "fp32":
                write_one(folder, run, precision, int4, texts, threads, log,
                          importance if precision in CALIBRATED else None, hessians)
        if importance.max_kl:
            write_budgets(folder, run, texts, threads, log, importance)
    # every ONNX artifact the folder holds now (earlier runs' too), not only this run's
    listed = read_manifest(out).get("artifacts", {})
    target = write_genai_config(folder, out, {e["quant"]: name for name, e in listed.items()
                                              if e.get("format") == "onnx" and (out / name).is_file()})
    if target:
        checks["genai_config"] = {"file": GENAI_CONFIG, "model": target, "passed": True}
        log(f"wrote {GENAI_CONFIG} (onnxruntime-genai runs {target})")
    return update_manifest(out, folder, run.entries, {"onnx": checks})


def check_source(folder: ModelFolder, source: Path, label: str, texts: list[str], threads: int) -> dict:
    """The fp32 graph: onnx.checker, transformers tokenizes as slmkit does, logits equal the fp16
    reference's within tolerance, cached decoding equals a full forward pass. Raises naming ``label``."""
    from slmkit.runtimes.onnxrt import OnnxRuntime
    from slmkit.runtimes.reference import ReferenceRuntime

    checks = {"onnx_checker_fp32": onnx_checker(source)}
    require("onnx_checker", checks["onnx_checker_fp32"], label)
    with OnnxRuntime(source, threads=threads or None, checked=True) as rt, \
            ReferenceRuntime(folder, threads=threads or None) as ref:
        checks["tokenizer_transformers"] = tokenizer_parity(transformers_encoder(folder), rt.tokenizer, texts)
        checks["fidelity_fp32"] = fidelity(rt, ref, texts)
        checks["cache_fp32"] = cache_consistency(rt, texts[:8])
    require("tokenizer_transformers", checks["tokenizer_transformers"], label)
    require("fidelity", checks["fidelity_fp32"], label)
    require("cache_consistency", checks["cache_fp32"], label)
    return checks


def write_one(folder: ModelFolder, run: Conversion, precision: str, int4: Int4Options | None, texts: list[str],
              threads: int, log: Callable[[str], None], importance: Importance | None = None,
              hessians: dict | None = None) -> None:
    """One precision written (error-compensated with ``hessians``), checked (onnx.checker, cached decode equals
    full forward), landed, recorded."""
    from slmkit.runtimes.onnxrt import OnnxRuntime

    t0 = time.time()
    dest = run.out / artifact_name(folder, precision)
    settings = write_precision(folder, precision, dest, int4, hessians)
    if "compensation" in settings:
        c = settings["compensation"]
        log(f"{dest.name}: error compensation on {c['matrices']} matrices, output error x{c['output_error_ratio']:.2f}")
    run.landing.placed(dest)
    checker = onnx_checker(dest)
    require("onnx_checker", checker, dest.name)
    with OnnxRuntime(dest, threads=threads or None, checked=True) as rt:
        cache = cache_consistency(rt, texts[:4], quantized=precision.startswith("int"))
    require("cache_consistency", cache, dest.name)
    calibration = importance.record("onnx") if importance is not None and hessians else None
    record(folder, run, dest, precision, {**settings, "calibration": calibration,
                                          "checks": {"onnx_checker": checker, "cache_consistency": cache}}, t0, log)


def write_budgets(folder: ModelFolder, run: Conversion, texts: list[str], threads: int, log: Callable[[str], None],
                  importance: Importance) -> None:
    """One mixed 4/8-bit artifact per ``--max-kl`` budget (:mod:`slmkit.converters.budget`), checked and recorded."""
    from slmkit.converters.budget import OnnxLadder, quantize_to_budget
    from slmkit.runtimes.onnxrt import OnnxRuntime
    from slmkit.runtimes.reference import ReferenceRuntime

    sens = None
    ladder = OnnxLadder(folder, importance.ensure_matrix(folder, threads, log, hessians=True).hessians)
    with ReferenceRuntime(folder, threads=threads or None) as ref:
        for x in importance.max_kl:
            t0 = time.time()
            dest = run.out / f"{folder.name}-KL{x:g}.onnx"
            recipe, sens = quantize_to_budget(ladder, dest, x, ref, importance.held_out, log, sens)
            run.landing.placed(dest)
            checker = onnx_checker(dest)
            require("onnx_checker", checker, dest.name)
            with OnnxRuntime(dest, threads=threads or None, checked=True) as rt:
                cache = cache_consistency(rt, texts[:4], quantized=True)
            require("cache_consistency", cache, dest.name)
            summary = recipe.summary()
            record(folder, run, dest, f"kl{x:g}", {"calibration": importance.record("onnx"), "budget": {
                "max_kl": x, "held_out_texts": len(importance.held_out), **summary},
                "checks": {"onnx_checker": checker, "cache_consistency": cache}}, t0, log)
            log(f"{dest.name}: held-out mean KL {recipe.measured_kl:.5f} <= {x:g}; types {summary['type_counts']}")


def record(folder: ModelFolder, run: Conversion, path: Path, precision: str, settings: dict, t0: float,
           log: Callable[[str], None]) -> None:
    total = path.stat().st_size + int(settings.get("external_data_bytes", 0))  # the graph file and its weights file
    run.landing.record(path, artifact_entry(path, "onnx", precision, t0, **settings, bytes=total,
                                            bits_per_weight=round(8 * total / folder.n_params, 3)))
    log(f"wrote {path.name} ({total / 2**20:.1f} MiB, {time.time() - t0:.1f}s)")
