"""GGUF conversion benchmark: size, bits per weight and conversion + quantization time of every type.

    python -m devtools.gguf_bench --model demo|124m|FOLDER [--json FILE]

The quality of each type against the fp16 reference is ``slmkit bench``'s job
(``slmkit bench --formats gguf --quant all``).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from slmkit.converters.gguf_pipeline import convert_gguf
from slmkit.demo.dataset import workload
from slmkit.errors import run_script
from slmkit.model_folder import open_model_folder
from slmkit.synthetic import GPT2_124M, write_random_gpt2

TYPES = ["f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo", help="'demo', '124m' (random init) or a GPT-2 folder")
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
        manifest = convert_gguf(folder, TYPES, out, args.threads, log=lambda s: print("  " + s, flush=True),
                                texts=workload().texts)
        total = time.time() - t0
        result = {"model": folder.name, "params": folder.n_params, "threads": args.threads,
                  "convert_and_quantize_all_s": round(total, 1),
                  "artifacts": {e["quant"]: {"bytes": e["bytes"], "bits_per_weight": e["bits_per_weight"],
                                             "seconds": e["seconds"], "embedding_type": e["embedding_type"],
                                             "fallbacks": len(e["fallbacks"])}
                                for e in manifest["artifacts"].values()},
                  "checks": manifest["checks"]["gguf"]}

    print(f"\n{result['model']}: {result['params'] / 1e6:.1f}M params, all {len(TYPES)} types converted, checked "
          f"and quantized in {result['convert_and_quantize_all_s']} s ({args.threads} threads)\n")
    print("| type | MiB | bits/weight | embedding | fallbacks | seconds |")
    print("|---|---|---|---|---|---|")
    for q, a in result["artifacts"].items():
        print(f"| {q} | {a['bytes'] / 2**20:.1f} | {a['bits_per_weight']:.2f} | {a['embedding_type']} | "
              f"{a['fallbacks']} | {a['seconds']} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    run_script(main)
