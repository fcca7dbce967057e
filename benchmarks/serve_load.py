"""Load benchmark of ``slmkit serve``: aggregate tokens/s and latency percentiles at 1, 2, 4, 8 clients.

    python -m slmkit.benchmarks.serve_load ARTIFACT [--clients 1,2,4,8] [--requests 6] [--max-tokens 64]
        [--prompt-tokens 32] [--threads 2] [--parallel 8] [--time-limit 600] [--json FILE]

Each client count gets a fresh server (a child process on a free loopback port; nothing else is reached)
and one warm-up request; then every client sends ``--requests`` streaming completions one after another
(``ignore_eos``: each runs to ``--max-tokens``, as llama.cpp's ``llama-batched-bench`` does). Measured per
request: time to first token, time per output token after it, total latency. Bounded: a fixed count of
requests, and the run stops at ``--time-limit`` seconds.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from slmkit.errors import SlmkitError, run_script

WORDS = ("cozy cabin lake mountain sunset river forest garden city street market harbor bridge tower castle "
         "village meadow island desert canyon valley").split()


@dataclass
class Request:
    ttft: float
    per_token: float
    latency: float
    tokens: int


def prompt(k: int, n_words: int) -> str:
    """A distinct plain-text prompt of about ``n_words`` tokens (the demo's and GPT-2's BPE keep these whole)."""
    return " ".join(WORDS[(k * 7 + i) % len(WORDS)] for i in range(n_words))


class ServerProcess:
    def __init__(self, artifact: Path, threads: int, parallel: int):
        self.proc = subprocess.Popen([sys.executable, "-m", "slmkit", "serve", str(artifact), "--port", "0",
                                      "--threads", str(threads), "--parallel", str(parallel), "--max-queue", "64"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "on http://127.0.0.1:" not in line:
            self.proc.kill()
            raise SlmkitError(f"the server did not start: {(line + self.proc.stderr.read()).strip()[:300]}")
        self.port = int(line.rsplit(":", 1)[1])

    def complete(self, text: str, max_tokens: int) -> Request:
        """One streaming completion, timed at each server-sent event."""
        body = json.dumps({"prompt": text, "max_tokens": max_tokens, "stream": True, "ignore_eos": True,
                           "temperature": 0.7, "seed": 1, "stream_options": {"include_usage": True}})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        t0 = time.perf_counter()
        conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if r.status != 200:
            raise SlmkitError(f"the server answered {r.status}: {r.read()[:200]!r}")
        first, tokens = None, 0
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            elif first is None and event["choices"] and event["choices"][0]["text"]:
                first = time.perf_counter()
        end = time.perf_counter()
        conn.close()
        first = first or end
        return Request(first - t0, (end - first) / max(1, tokens - 1), end - t0, tokens)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run_level(artifact: Path, clients: int, args: argparse.Namespace, deadline: float) -> dict:
    server = ServerProcess(artifact, args.threads, args.parallel)
    try:
        server.complete(prompt(0, args.prompt_tokens), 8)  # warm-up
        results: list[Request] = []
        errors: list[str] = []
        lock = threading.Lock()

        def client(c: int) -> None:
            for k in range(args.requests):
                if time.time() > deadline:
                    return
                try:
                    r = server.complete(prompt(c * 100 + k, args.prompt_tokens), args.max_tokens)
                except Exception as e:  # noqa: BLE001 - counted and shown, the run goes on
                    with lock:
                        errors.append(str(e)[:200])
                    continue
                with lock:
                    results.append(r)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        server.stop()
    if not results:
        raise SlmkitError(f"no request succeeded at {clients} clients: {errors[:1]}")
    lat, per_tok, ttft = ([getattr(r, f) for r in results] for f in ("latency", "per_token", "ttft"))
    return {"clients": clients, "requests": len(results), "failed": len(errors), "tokens": sum(r.tokens for r in results),
            "seconds": round(wall, 2), "tok_s": round(sum(r.tokens for r in results) / wall, 1),
            "latency_p50_s": round(pct(lat, 50), 3), "latency_p95_s": round(pct(lat, 95), 3),
            "ttft_p50_s": round(pct(ttft, 50), 3), "ttft_p95_s": round(pct(ttft, 95), 3),
            "per_token_p50_ms": round(1000 * pct(per_tok, 50), 2), "per_token_p95_ms": round(1000 * pct(per_tok, 95), 2),
            "errors": errors[:3]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--clients", default="1,2,4,8")
    ap.add_argument("--requests", type=int, default=6, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=8, help="the server's slots")
    ap.add_argument("--time-limit", type=float, default=600)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if not args.artifact.exists():
        raise SlmkitError(f"{args.artifact}: no such artifact")
    deadline = time.time() + args.time_limit
    levels = []
    for c in (int(x) for x in args.clients.split(",")):
        levels.append(run_level(args.artifact, c, args, deadline))
        row = levels[-1]
        print(f"{c} clients: {row['tok_s']:.1f} tok/s ({row['tok_s'] / levels[0]['tok_s']:.2f}x), latency p50 "
              f"{row['latency_p50_s']:.2f} s p95 {row['latency_p95_s']:.2f} s, per token p50 {row['per_token_p50_ms']:.1f} "
              f"ms p95 {row['per_token_p95_ms']:.1f} ms, ttft p50 {row['ttft_p50_s']:.3f} s, "
              f"{row['requests']} requests, {row['failed']} failed", flush=True)
    report = {"artifact": str(args.artifact), "threads": args.threads, "parallel": args.parallel,
              "max_tokens": args.max_tokens, "prompt_tokens": args.prompt_tokens, "cpu_count": os.cpu_count(),
              "levels": levels}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    run_script(main)
