"""GPT-2 folder → checked GGUF artifacts of several types, a manifest and the tokenizer, in one folder.

Order: write the f16 GGUF (the quantization source), check it (llama.cpp tokenization equals the HF
tokenizer's; its logits match the fp16 reference), then quantize each requested type from it.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from slmkit.converters.checks import evaluation_texts, fidelity, require, tokenizer_parity, transformers_encoder
from slmkit.converters.gguf_quantize import quantize_gguf, read_result
from slmkit.converters.gguf_writer import write_gguf
from slmkit.converters.output import Landing, artifact_entry, prepare_output
from slmkit.manifest import update_manifest
from slmkit.model_folder import ModelFolder


def artifact_name(folder: ModelFolder, quant: str) -> str:
    return f"{folder.name}-{quant.upper()}.gguf"


def convert_gguf(folder: ModelFolder, quants: list[str], out: Path, threads: int = 0,
                 embedding_type: str | None = None, log: Callable[[str], None] = print) -> dict:
    """Write, check and quantize; returns the updated manifest."""
    from slmkit.runtimes.llamacpp import LlamaCppRuntime
    from slmkit.runtimes.reference import ReferenceRuntime

    f16 = out / artifact_name(folder, "f16")
    keep_f16 = "f16" in quants
    source = prepare_output(folder, out, f16, keep_f16)
    landing = Landing(out, folder)
    label = f16.name if keep_f16 else f"{folder.name} (f16 source)"  # the temp file's name means nothing
    try:
        t0 = time.time()
        write_gguf(folder, source, "f16")
        log(f"wrote {f16.name if keep_f16 else 'the f16 source'} ({source.stat().st_size / 2**20:.1f} MiB, "
            f"{time.time() - t0:.1f}s)")
        if keep_f16:
            landing.placed(f16)
            f16_entry = artifact_entry(f16, "gguf", "f16", t0, **read_result(f16, "f16").summary())

        texts = evaluation_texts()
        with LlamaCppRuntime(source, threads=threads or None) as rt, ReferenceRuntime(folder, threads=threads or None) as ref:
            checks = {"tokenizer_transformers": tokenizer_parity(transformers_encoder(folder), ref.tokenizer, texts),
                      "tokenizer_parity": tokenizer_parity(rt.llama_tokenize, ref.tokenizer, texts),
                      "fidelity_f16": fidelity(rt, ref, texts)}
        require("tokenizer_transformers", checks["tokenizer_transformers"], label)
        require("tokenizer_parity", checks["tokenizer_parity"], label)
        require("fidelity", checks["fidelity_f16"], label)
        log(f"checks passed: llama.cpp and transformers tokenize {len(texts)} texts as slmkit does; f16 logits max |Δ| "
            f"{checks['fidelity_f16']['max_abs_diff']:.4f} vs the fp16 reference")
        if keep_f16:
            landing.record(f16, f16_entry)

        for quant in quants:
            if quant == "f16":
                continue
            t0 = time.time()
            dest = out / artifact_name(folder, quant)
            if quant == "f32":
                write_gguf(folder, dest, "f32")
                result = read_result(dest, "f32")
            else:
                result = quantize_gguf(source, dest, quant, threads, embedding_type)
            landing.placed(dest)
            landing.record(dest, artifact_entry(dest, "gguf", quant, t0, **result.summary()))
            msg = (f"wrote {dest.name} ({dest.stat().st_size / 2**20:.1f} MiB, {result.bits_per_weight:.2f} bits/weight, "
                   f"embedding {result.embedding_type}, {time.time() - t0:.1f}s)")
            log(msg)
            if result.fallbacks:
                got = sorted(set(result.fallbacks.values()))
                log(f"warning: {dest.name}: {len(result.fallbacks)} tensors fell back from {quant} to "
                    f"{'/'.join(got)} (rows of {folder.shape.n_embd} or {folder.shape.n_inner} do not fit "
                    f"its block size); recorded in the manifest")
    except BaseException:
        landing.discard_unrecorded()
        raise
    finally:
        if not keep_f16:
            source.unlink(missing_ok=True)
    return update_manifest(out, folder, landing.entries, {"gguf": checks})

