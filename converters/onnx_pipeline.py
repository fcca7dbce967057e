"""GPT-2 folder → checked ONNX artifacts (fp32 / fp16 / int8 / int4), tokenizer and manifest in one folder.

The fp32 graph is checked first (onnx.checker; logits match the fp16 reference; cached decoding equals
a full forward pass), then each requested precision is written and checked with onnx.checker and the
cache test.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from slmkit.converters.checks import (cache_consistency, evaluation_texts, fidelity, onnx_checker, require,
                                      tokenizer_parity, transformers_encoder)
from slmkit.converters.onnx_genai import GENAI_CONFIG, write_genai_config
from slmkit.converters.onnx_quantize import Int4Options, write_precision
from slmkit.converters.output import Landing, artifact_entry, prepare_output
from slmkit.manifest import update_manifest
from slmkit.model_folder import ModelFolder


def artifact_name(folder: ModelFolder, precision: str) -> str:
    return f"{folder.name}-{precision}.onnx"


def convert_onnx(folder: ModelFolder, precisions: list[str], out: Path, threads: int = 0,
                 int4: Int4Options | None = None, log: Callable[[str], None] = print) -> dict:
    """Write and check every precision; returns the updated manifest."""
    from slmkit.runtimes.onnxrt import OnnxRuntime
    from slmkit.runtimes.reference import ReferenceRuntime

    texts = evaluation_texts()
    fp32 = out / artifact_name(folder, "fp32")
    keep_fp32 = "fp32" in precisions
    source = prepare_output(folder, out, fp32, keep_fp32)
    landing = Landing(out, folder)
    label = fp32.name if keep_fp32 else f"{folder.name} (fp32 source)"  # the temp file's name means nothing
    checks: dict[str, dict] = {}
    try:
        t0 = time.time()
        settings = write_precision(folder, "fp32", source)
        if keep_fp32:
            landing.placed(source)
        checks["onnx_checker_fp32"] = onnx_checker(source)
        require("onnx_checker", checks["onnx_checker_fp32"], label)
        with OnnxRuntime(source, threads=threads or None, checked=True) as rt, \
                ReferenceRuntime(folder, threads=threads or None) as ref:
            checks["tokenizer_transformers"] = tokenizer_parity(transformers_encoder(folder), rt.tokenizer, texts)
            checks["fidelity_fp32"] = fidelity(rt, ref, texts)
            checks["cache_fp32"] = cache_consistency(rt, texts[:8])
        require("tokenizer_transformers", checks["tokenizer_transformers"], label)
        require("fidelity", checks["fidelity_fp32"], label)
        require("cache_consistency", checks["cache_fp32"], label)
        log(f"checks passed: onnx.checker; transformers tokenizes as slmkit does; fp32 logits max |Δ| {checks['fidelity_fp32']['max_abs_diff']:.5f} vs the "
            f"fp16 reference; cached decode equals full forward (max |Δ| {checks['cache_fp32']['max_abs_diff']:.1e})")
        if keep_fp32:
            landing.record(fp32, artifact_entry(fp32, "onnx", "fp32", t0, **settings,
                                                bits_per_weight=round(8 * fp32.stat().st_size / folder.n_params, 3)))
            log(f"wrote {fp32.name} ({fp32.stat().st_size / 2**20:.1f} MiB, {time.time() - t0:.1f}s)")
        for precision in precisions:
            if precision == "fp32":
                continue
            t0 = time.time()
            dest = out / artifact_name(folder, precision)
            settings = write_precision(folder, precision, dest, int4)
            landing.placed(dest)
            check = onnx_checker(dest)
            require("onnx_checker", check, dest.name)
            with OnnxRuntime(dest, threads=threads or None, checked=True) as rt:
                cache = cache_consistency(rt, texts[:4], quantized=precision.startswith("int"))
            require("cache_consistency", cache, dest.name)
            landing.record(dest, artifact_entry(dest, "onnx", precision, t0, **settings,
                                                bits_per_weight=round(8 * dest.stat().st_size / folder.n_params, 3)))
            log(f"wrote {dest.name} ({dest.stat().st_size / 2**20:.1f} MiB, {time.time() - t0:.1f}s)")
    except BaseException:
        landing.discard_unrecorded()
        raise
    finally:
        if not keep_fp32:
            source.unlink(missing_ok=True)
            source.with_name(source.name + ".data").unlink(missing_ok=True)
    target = write_genai_config(folder, out, {e["quant"]: name for name, e in landing.entries.items()})
    if target:
        checks["genai_config"] = {"file": GENAI_CONFIG, "model": target, "passed": True}
        log(f"wrote {GENAI_CONFIG} (onnxruntime-genai runs {target})")
    return update_manifest(out, folder, landing.entries, {"onnx": checks})
