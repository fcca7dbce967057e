"""Latency and memory of each artifact, each measured in its own fresh process.

    python -m slmkit.benchmarks.speed ARTIFACT_DIR [--model MODEL] [--threads 2] [--json FILE]

Runs transformers fp32 eager on the source model (the baseline) and every artifact in the folder's
manifest, interleaved over ``--rounds``, through the same Runtime primitives: load time, prefill of a
128-token prompt, per-token decode latency over 64 greedy steps (median and p95), peak RSS. Ratios
are against the baseline measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PROMPT_TOKENS = 128
DECODE_TOKENS = 64


def worker(kind: str, path: str, threads: int, reps: int, device: str = "cpu") -> dict:
    """Measure one runtime in this process."""
    from slmkit.loader import load

    t0 = time.perf_counter()
    rt = load(path, device=device, threads=threads)
    load = time.perf_counter() - t0
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rng = np.random.default_rng(0)
    vocab = rt.tokenizer.vocab_size
    prompt = [int(i) for i in rng.integers(0, min(vocab, 2000), PROMPT_TOKENS)]
    prefill, decode = [], []
    for rep in range(reps + 1):  # the first repetition is warm-up
        rt._reset()
        t = time.perf_counter()
        logits = rt._eval(prompt, all_logits=False)[-1]
        p = time.perf_counter() - t
        steps = []
        for _ in range(DECODE_TOKENS):
            tok = int(np.argmax(logits))
            t = time.perf_counter()
            logits = rt._eval([tok], all_logits=False)[-1]
            steps.append(time.perf_counter() - t)
        if rep:
            prefill.append(p)
            decode.extend(steps)
    rt.close()
    d = np.array(decode) * 1000
    return {"kind": kind, "path": path, "threads": threads, "profile": device, "load_s": load, "rss_after_load_mb": rss_loaded,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "prefill_ms": 1000 * float(np.median(prefill)), "decode_ms_p50": float(np.median(d)),
            "decode_ms_p95": float(np.percentile(d, 95)), "decode_tok_s": 1000 / float(np.median(d))}


def run_worker(kind: str, path: str, threads: int, reps: int, device: str = "cpu") -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    p = subprocess.run([sys.executable, "-m", "slmkit.benchmarks.speed", "--worker", kind, path,
                        "--threads", str(threads), "--reps", str(reps), "--device", device],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{kind} {path} failed: {p.stderr.strip().splitlines()[-1:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="?", help="artifact folder with manifest.json")
    ap.add_argument("--model", default=None, help="source GPT-2 folder for the transformers baseline")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="device profile recorded with every result")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the best round per artifact is kept")
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.threads, args.reps, args.device)))
        return

    folder = Path(args.artifacts)
    manifest = json.loads((folder / "manifest.json").read_text())
    model = args.model or manifest["source"]["path"]
    jobs = [("transformers fp32", "transformers", model, 0)]
    for name, e in manifest["artifacts"].items():
        jobs.append((f"{e['format']} {e['quant']}", e["format"], str(folder / name), e["bytes"]))
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for label, kind, path, size in jobs:
            r = run_worker(kind, path, args.threads, args.reps, args.device)
            r["bytes"] = size
            if label not in best or r["decode_ms_p50"] < best[label]["decode_ms_p50"]:
                best[label] = r
            print(f"  {label}: decode {r['decode_ms_p50']:.2f} ms/token", file=sys.stderr, flush=True)
    base = best["transformers fp32"]
    print(f"\n{manifest['source']['name']}, profile {args.device}, {args.threads} threads, prompt {PROMPT_TOKENS} tokens, "
          f"{DECODE_TOKENS} decode steps x {args.reps} reps, best of {args.rounds} interleaved rounds\n")
    print("| runtime | file MiB | load s | peak RSS MiB | prefill ms | decode ms/tok p50 | p95 | tok/s | × baseline |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, r in best.items():
        size = f"{r['bytes'] / 2**20:.1f}" if r["bytes"] else ""
        print(f"| {label} | {size} | {r['load_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['prefill_ms']:.1f} | "
              f"{r['decode_ms_p50']:.2f} | {r['decode_ms_p95']:.2f} | {r['decode_tok_s']:.0f} | "
              f"{base['decode_ms_p50'] / r['decode_ms_p50']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(best, indent=2) + "\n")


if __name__ == "__main__":
    main()
