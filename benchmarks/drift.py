"""Quality drift of every artifact in a folder against the fp16 reference, on held-out texts.

    python -m slmkit.benchmarks.drift ARTIFACT_DIR [--model MODEL] [--texts 108] [--json FILE]

All runtimes score exactly the same token ids (the HF tokenizer's). Per artifact: perplexity and its
change, mean / median / p99 / max KL divergence, same-top-1 rate and RMS Δp (llama.cpp's
``--kl-divergence`` definitions), and the share of held-out prompts whose greedy continuation equals
the reference's.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from slmkit.benchmarks.quality import perplexity, summarize_drift, token_drift
from slmkit.converters.checks import evaluation_texts
from slmkit.demo.dataset import examples
from slmkit.runtimes import open_runtime

GREEDY_TOKENS = 32


def artifact_drift(folder: Path, model: str | None, n_texts: int, threads: int, n_prompts: int = 54) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text())
    model = model or manifest["source"]["path"]
    texts = evaluation_texts(n_texts)
    prompts = [e.prompt for e in examples("eval", n_prompts)]
    with open_runtime(model, threads=threads) as ref:
        ids = [ref.tokenize(t)[: ref.n_ctx] for t in texts]
        ref_logits = [ref.score(i) for i in ids]
        ref_greedy = [ref.generate(p, max_new_tokens=GREEDY_TOKENS) for p in prompts]
    base_ppl = perplexity(ref_logits, ids)
    rows = {"fp16 reference": {"ppl": base_ppl, "bytes": None}}
    for name, entry in manifest["artifacts"].items():
        with open_runtime(folder / name, threads=threads) as rt:
            logits = [rt.score(i) for i in ids]
            greedy = [rt.generate(p, max_new_tokens=GREEDY_TOKENS) for p in prompts]
        stats = summarize_drift([token_drift(r, g) for r, g in zip(ref_logits, logits)])
        ppl = perplexity(logits, ids)
        rows[f"{entry['format']} {entry['quant']}"] = {
            **stats, "ppl": ppl, "ppl_change_pct": 100 * (ppl / base_ppl - 1), "bytes": entry["bytes"],
            "greedy_agreement": sum(a == b for a, b in zip(greedy, ref_greedy)) / len(prompts)}
    return {"model": manifest["source"]["name"], "texts": n_texts, "prompts": n_prompts, "rows": rows}


def markdown(result: dict) -> str:
    lines = ["| artifact | MiB | ppl | Δppl | mean KL | p99 KL | max KL | same top-1 | RMS Δp | greedy = ref |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        if r["bytes"] is None:
            lines.append(f"| {name} | | {r['ppl']:.4f} | | | | | | | |")
            continue
        lines.append(f"| {name} | {r['bytes'] / 2**20:.1f} | {r['ppl']:.4f} | {r['ppl_change_pct']:+.2f}% | "
                     f"{r['mean_kl']:.5f} | {r['p99_kl']:.4f} | {r['max_kl']:.3f} | {100 * r['same_top1']:.1f}% | "
                     f"{100 * r['rms_delta_p']:.2f}% | {100 * r['greedy_agreement']:.0f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", type=Path)
    ap.add_argument("--model", default=None)
    ap.add_argument("--texts", type=int, default=108)
    ap.add_argument("--prompts", type=int, default=54)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    result = artifact_drift(args.artifacts, args.model, args.texts, args.threads, args.prompts)
    print(f"{result['model']}: {result['texts']} held-out texts, greedy agreement over {result['prompts']} prompts "
          f"x {GREEDY_TOKENS} tokens\n")
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
