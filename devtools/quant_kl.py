"""Drift of quantized artifacts from the fp16 reference on one text set: mean KL and same-top-1, fast.

    python -m devtools.quant_kl ARTIFACT [ARTIFACT ...] [--model FOLDER] [--texts eval|lexicon|FILE]
        [--n 1494] [--json FILE]

The reference (transformers, fp16 weights) scores every text once (cached in out/quant_kl/); each artifact
(GGUF or ONNX, through ``slmkit.load``) scores the same token ids; per-token KL(P_ref || P_artifact) and top-1
agreement are pooled over all positions with a next token, as ``slmkit bench`` pools them. For comparing
quantization recipes quickly: ``slmkit bench`` is the full report.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from slmkit.errors import run_script
from slmkit.metrics import summarize_drift, token_drift


def texts_for(spec: str, n: int) -> tuple[list[str], str]:
    if spec in ("eval", "lexicon"):
        from slmkit.demo.dataset import examples

        return [e.text for e in examples(spec, n)], f"demo {spec} ({n})"
    from slmkit.workload import read_lines

    return read_lines(spec)[:n], spec


def reference_logits(model: str | None, texts: list[str], cache: Path) -> tuple[list[list[int]], list[np.ndarray]]:
    from slmkit.runtimes.reference import ReferenceRuntime

    key = hashlib.sha256(json.dumps([model or "demo", texts]).encode()).hexdigest()[:16]
    path = cache / f"ref-{key}.npz"
    with ReferenceRuntime(model) as ref:
        ids = [ref.tokenize(t)[: ref.n_ctx] for t in texts]
        if path.exists():
            data = np.load(path)
            return ids, [data[f"a{i}"] for i in range(len(ids))]
        logits = [ref.score(i).astype(np.float16) for i in ids]
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"a{i}": lg for i, lg in enumerate(logits)})
    return ids, logits


def drift(artifact: Path, ids: list[list[int]], ref: list[np.ndarray]) -> dict:
    from slmkit.loader import load

    with load(artifact, threads=2) as rt:
        per = [token_drift(r.astype(np.float32), rt.score(i)[:, : r.shape[1]], i) for i, r in zip(ids, ref) if len(i) > 1]
        info = rt.info
    return {"artifact": str(artifact), "bits_per_weight": info.get("bits_per_weight"), **summarize_drift(per)}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+", type=Path)
    ap.add_argument("--model", default=None, help="the model folder (default: the demo model)")
    ap.add_argument("--texts", default="eval")
    ap.add_argument("--n", type=int, default=1494)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    texts, source = texts_for(a.texts, a.n)
    ids, ref = reference_logits(a.model, texts, Path("out/quant_kl"))
    rows = []
    for path in a.artifacts:
        row = drift(path, ids, ref)
        rows.append(row)
        print(f"{row['artifact']}: {row['bits_per_weight']} bits/weight, mean KL {row['mean_kl']:.5f}, same top-1 "
              f"{100 * row['same_top1']:.2f}%, p99 KL {row['p99_kl']:.4f} ({row['tokens']} tokens of {source})", flush=True)
    if a.json:
        a.json.write_text(json.dumps({"texts": source, "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    run_script(lambda: main() and None)
