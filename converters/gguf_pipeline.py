"""GPT-2 folder → checked GGUF artifacts of several types, a manifest and the tokenizer, in one folder.

Order: write the f16 GGUF (the quantization source), check it (llama.cpp tokenization equals the HF
tokenizer's; its logits match the fp16 reference), compute the importance matrix when calibration texts are
given (or take one from a file), then quantize each requested type from it.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from slmkit.converters.checks import fidelity, finite_logits, require, tokenizer_parity, transformers_encoder
from slmkit.converters.calibration import Importance
from slmkit.converters.gguf_quantize import quantize_gguf, read_result
from slmkit.converters.gptq import compensate
from slmkit.converters.imatrix import write_imatrix
from slmkit.converters.gguf_writer import write_gguf
from slmkit.converters.output import Conversion, artifact_entry
from slmkit.manifest import update_manifest
from slmkit.model_folder import ModelFolder


def artifact_name(folder: ModelFolder, quant: str) -> str:
    return f"{folder.name}-{quant.upper()}.gguf"


def convert_gguf(folder: ModelFolder, quants: list[str], out: Path, threads: int = 0,
                 embedding_type: str | None = None, log: Callable[[str], None] = print, *,
                 texts: Sequence[str], importance: Importance | None = None) -> dict:
    """Write, check (tokenizer parity and logits against the fp16 reference on ``texts``) and quantize;
    returns the updated manifest."""
    importance = importance or Importance()
    f16 = out / artifact_name(folder, "f16")
    with Conversion(folder, out, f16, "f16" in quants, "f16") as run:
        t0 = time.time()
        write_gguf(folder, run.source, "f16")
        log(f"wrote {f16.name if run.keep else 'the f16 source'} ({run.source.stat().st_size / 2**20:.1f} MiB, "
            f"{time.time() - t0:.1f}s)")
        if run.keep:
            run.landing.placed(f16)  # removed again if its checks fail
            f16_entry = artifact_entry(f16, "gguf", "f16", t0, **read_result(f16, "f16").summary())
        checks = check_source(folder, run.source, run.label, list(texts), threads)
        log(f"checks passed: llama.cpp and transformers tokenize {len(texts)} texts as slmkit does; f16 logits max "
            f"|Δ| {checks['fidelity_f16']['max_abs_diff']:.4f} vs the fp16 reference")
        if run.keep:
            run.landing.record(f16, f16_entry)
        if importance.calibration is not None and (importance.max_kl or any(q not in ("f16", "f32") for q in quants)):
            importance.ensure_matrix(folder, threads, log)
            if importance.out is not None:
                write_imatrix(importance.matrix, importance.out)
                log(f"wrote the importance matrix to {importance.out} (llama.cpp's imatrix format)")
        for quant in quants:
            if quant != "f16":
                quantize_one(folder, run, quant, threads, embedding_type, list(texts), log, importance)
        if importance.max_kl:
            quantize_budgets(folder, run, threads, list(texts), log, importance)
    return update_manifest(out, folder, run.entries, {"gguf": checks})


def quantize_budgets(folder: ModelFolder, run: Conversion, threads: int, texts: list[str], log: Callable[[str], None],
                     importance: Importance) -> None:
    """One mixed-precision artifact per ``--max-kl`` budget (:mod:`slmkit.converters.budget`), checked and recorded."""
    from slmkit.converters.budget import GgufLadder, quantize_to_budget
    from slmkit.runtimes.llamacpp import LlamaCppRuntime
    from slmkit.runtimes.reference import ReferenceRuntime

    sens = None
    ladder = GgufLadder(run.source, run.out, threads, importance.matrix, importance.matrix.hessians)
    with ReferenceRuntime(folder, threads=threads or None) as ref:
        for x in importance.max_kl:
            t0 = time.time()
            dest = run.out / f"{folder.name}-KL{x:g}.gguf"
            recipe, sens = quantize_to_budget(ladder, dest, x, ref, importance.held_out, log, sens)
            result = read_result(dest, "q4_k_m")
            run.landing.placed(dest)
            with LlamaCppRuntime(dest, threads=threads or None) as rt:
                check = finite_logits(rt, texts[:4])
            require("finite_logits", check, dest.name)
            summary = {**result.summary(), "fallbacks": {}}
            run.landing.record(dest, artifact_entry(dest, "gguf", f"kl{x:g}", t0, **summary, calibration=importance.record("gguf"),
                                                    budget={"max_kl": x, "held_out_texts": len(importance.held_out),
                                                            **recipe.summary()}, checks={"finite_logits": check}))
            log(f"wrote {dest.name} ({dest.stat().st_size / 2**20:.1f} MiB, {result.bits_per_weight:.2f} bits/weight, "
                f"held-out mean KL {recipe.measured_kl:.5f} <= {x:g}; types {recipe.summary()['type_counts']}, "
                f"{time.time() - t0:.1f}s)")


def check_source(folder: ModelFolder, source: Path, label: str, texts: list[str], threads: int) -> dict:
    """The f16 GGUF against the model: llama.cpp's and transformers' tokenization equal slmkit's, logits
    equal the fp16 reference's within tolerance. Raises naming ``label`` on the first that fails."""
    from slmkit.runtimes.llamacpp import LlamaCppRuntime
    from slmkit.runtimes.reference import ReferenceRuntime

    with LlamaCppRuntime(source, threads=threads or None) as rt, ReferenceRuntime(folder, threads=threads or None) as ref:
        checks = {"tokenizer_transformers": tokenizer_parity(transformers_encoder(folder), ref.tokenizer, texts),
                  "tokenizer_parity": tokenizer_parity(rt.llama_tokenize, ref.tokenizer, texts),
                  "fidelity_f16": fidelity(rt, ref, texts)}
    require("tokenizer_transformers", checks["tokenizer_transformers"], label)
    require("tokenizer_parity", checks["tokenizer_parity"], label)
    require("fidelity", checks["fidelity_f16"], label)
    return checks


def quantize_one(folder: ModelFolder, run: Conversion, quant: str, threads: int, embedding_type: str | None,
                 texts: list[str], log: Callable[[str], None], importance: Importance) -> None:
    """One GGUF type from the checked f16 source (f32 straight from the weights), checked (it loads and
    gives finite logits), landed and recorded with its check."""
    from slmkit.runtimes.llamacpp import LlamaCppRuntime

    t0 = time.time()
    dest = run.out / artifact_name(folder, quant)
    if quant == "f32":
        write_gguf(folder, dest, "f32")
        result = read_result(dest, "f32")
    else:
        result = quantize_gguf(run.source, dest, quant, threads, embedding_type, imatrix=importance.matrix)
        if importance.matrix is not None and importance.matrix.hessians:
            compensate(run.source, dest, importance.matrix.hessians, log)
    run.landing.placed(dest)
    with LlamaCppRuntime(dest, threads=threads or None) as rt:
        check = finite_logits(rt, texts[:4])
    require("finite_logits", check, dest.name)
    calibrated = importance.record("gguf") if quant not in ("f16", "f32") else None
    run.landing.record(dest, artifact_entry(dest, "gguf", quant, t0, **result.summary(), calibration=calibrated,
                                            checks={"finite_logits": check}))
    log(f"wrote {dest.name} ({dest.stat().st_size / 2**20:.1f} MiB, {result.bits_per_weight:.2f} bits/weight, "
        f"embedding {result.embedding_type}{', importance-weighted' if calibrated else ''}, {time.time() - t0:.1f}s)")
    if result.fallbacks:
        got = sorted(set(result.fallbacks.values()))
        log(f"warning: {dest.name}: {len(result.fallbacks)} tensors fell back from {quant} to "
            f"{'/'.join(got)} (rows of {folder.shape.n_embd} or {folder.shape.n_inner} do not fit "
            f"its block size); recorded in the manifest")
