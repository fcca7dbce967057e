"""GGUF benchmark: size, bits per weight and conversion time of every type; quality drift on the demo.

    python -m slmkit.benchmarks.gguf_bench --model demo  [--texts 108] [--json FILE]
    python -m slmkit.benchmarks.gguf_bench --model 124m                # random init: sizes and times only

Quality (benchmarks/drift.py): mean / p99 KL divergence, same-top-1 and perplexity of each type against
the fp16 reference (transformers) on the demo model's held-out texts, all scoring the same token ids.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from slmkit.benchmarks.drift import artifact_drift
from slmkit.converters.gguf_pipeline import convert_gguf
from slmkit.model_folder import open_model_folder
from slmkit.synthetic import GPT2_124M, write_random_gpt2

TYPES = ["f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo", help="'demo', '124m' (random init) or a GPT-2 folder")
    ap.add_argument("--texts", type=int, default=108)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model == "124m":
            src = write_random_gpt2(tmp / "gpt2-124m-random", tokenizer="gpt2", **GPT2_124M)
        else:
            src = None if args.model == "demo" else args.model
        folder = open_model_folder(src)
        out = tmp / "out"
        t0 = time.time()
        manifest = convert_gguf(folder, TYPES, out, args.threads, log=lambda s: print("  " + s, flush=True))
        total = time.time() - t0
        result = {"model": folder.name, "params": folder.n_params, "threads": args.threads,
                  "convert_and_quantize_all_s": round(total, 1),
                  "artifacts": {e["quant"]: {"bytes": e["bytes"], "bits_per_weight": e["bits_per_weight"],
                                             "seconds": e["seconds"], "embedding_type": e["embedding_type"],
                                             "fallbacks": len(e["fallbacks"])}
                                for e in manifest["artifacts"].values()},
                  "checks": manifest["checks"]["gguf"]}
        if args.model != "124m":
            result["quality"] = artifact_drift(out, str(folder.path), args.texts, args.threads)["rows"]

    print(f"\n{result['model']}: {result['params'] / 1e6:.1f}M params, all {len(TYPES)} types converted, checked "
          f"and quantized in {result['convert_and_quantize_all_s']} s ({args.threads} threads)\n")
    print("| type | MiB | bits/weight | embedding | fallbacks | seconds |" + (
        " mean KL | p99 KL | same top-1 | ppl |" if "quality" in result else ""))
    print("|---|---|---|---|---|---|" + ("---|---|---|---|" if "quality" in result else ""))
    for q, a in result["artifacts"].items():
        line = (f"| {q} | {a['bytes'] / 2**20:.1f} | {a['bits_per_weight']:.2f} | {a['embedding_type']} | "
                f"{a['fallbacks']} | {a['seconds']} |")
        if "quality" in result:
            s = result["quality"][f"gguf {q}"]
            line += f" {s['mean_kl']:.5f} | {s['p99_kl']:.4f} | {100 * s['same_top1']:.1f}% | {s['ppl']:.4f} |"
        print(line)
    if "quality" in result:
        print(f"\nfp16 reference perplexity {result['quality']['fp16 reference']['ppl']:.4f} on {args.texts} "
              f"held-out texts ({result['quality']['gguf f16']['tokens']} tokens)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
