"""Load benchmark of ``slmkit serve``: aggregate tokens/s and latency percentiles at 1, 2, 4, 8 clients.

    python -m slmkit.benchmarks.serve_load ARTIFACT [--clients 1,2,4,8] [--requests 6] [--max-tokens 64]
        [--prompt-tokens 32] [--threads 2] [--parallel 8] [--time-limit 600] [--json FILE]
    python -m slmkit.benchmarks.serve_load ARTIFACT --soak 600 [--clients 8]     # the soak run
    python -m slmkit.benchmarks.serve_load ARTIFACT --peer PATH/llama-batched-bench  # and the peer, same run
    python -m slmkit.benchmarks.serve_load ARTIFACT --engine     # and the engine alone, without HTTP
    python -m slmkit.benchmarks.serve_load ARTIFACT --peer-server PATH/llama-server [--rounds 2]  # served peer

Each client count gets a fresh server (a child process on a free loopback port; nothing else is reached)
and one warm-up request; then every client sends ``--requests`` streaming completions one after another
(``ignore_eos``: each runs to ``--max-tokens``, as llama.cpp's ``llama-batched-bench`` does). Measured per
request: time to first token, time per output token after it, total latency. Bounded: a fixed count of
requests, and the run stops at ``--time-limit`` seconds.

``--peer BINARY``: stock llama.cpp's ``llama-batched-bench`` on the same GGUF file, threads, prompt and output
lengths and sequence counts, run right after the server's levels (same machine state); its generation
tokens/s (``S_TG``) per sequence count is reported beside the server's aggregate.

``--peer-server BINARY``: stock ``llama-server`` on the same file, threads and slots, driven by the same
clients right after slmkit serve at each level (``--rounds`` interleaves them again): tokens/s and the time
to first token of one streaming request per client sent together, side by side.

``--engine``: the same counts through the server's :class:`ContinuousBatch` in this process (no HTTP, no
clients): decode-only tokens/s, comparable to the peer's, and the backend's share of it, so a gap to the
peer splits into backend, per-token Python and HTTP.

``--soak SECONDS``: one server, ``--clients`` clients sending mixed traffic for that long (plain and
streaming completions, n up to 4, /v1/prompts, streams abandoned after the first event, bad requests);
the server process's RSS, open files and threads are sampled every few seconds. A healthy server ends
with 0 failed requests, no 5xx, and the three curves flat.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
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
    """``slmkit serve ARTIFACT --port 0 ARGS`` as a child process; ``port`` / ``url`` once it listens.
    ``command``: another module that serves the same way (``python -m MODULE ARTIFACT --port 0 ARGS``)."""

    def __init__(self, artifact: Path, *args: str, env: dict[str, str] | None = None,
                 command: tuple[str, ...] = ("slmkit", "serve")):
        self.proc = subprocess.Popen([sys.executable, "-m", *command, str(artifact), "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline()
        if "on http://127.0.0.1:" not in line:
            self.proc.kill()
            raise SlmkitError(f"the server did not start: {(line + self.proc.stderr.read()).strip()[:300]}")
        self.port = int(line.rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: object = None, key: str | None = None, raw: bytes | None = None,
                timeout: float = 60) -> tuple[int, dict, dict | str]:
        """One plain HTTP request: status, headers, and the body (parsed when it is JSON)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        text = r.read().decode()
        conn.close()
        try:
            parsed: dict | str = json.loads(text)
        except json.JSONDecodeError:
            parsed = text
        return r.status, dict(r.getheaders()), parsed

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
        first, tokens, events = None, 0, 0
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            elif event.get("choices") and event["choices"][0].get("text"):
                events += 1
                first = first or time.perf_counter()
        tokens = tokens or events  # a server that reports no usage: one event a token
        end = time.perf_counter()
        conn.close()
        first = first or end
        return Request(first - t0, (end - first) / max(1, tokens - 1), end - t0, tokens)

    def stop(self) -> int:
        """SIGTERM (a graceful stop); its exit code (killed, and -9, past 30 s)."""
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class LlamaServer(ServerProcess):
    """Stock llama.cpp ``llama-server`` on the same file, threads and slots (the serving peer): ``-c`` gives each
    of the ``parallel`` slots 512 tokens, as ../shared/NOTES.md ran it; ready once ``/health`` answers 200."""

    def __init__(self, binary: Path, artifact: Path, threads: int, parallel: int):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        import llama_cpp

        from slmkit.runtimes.llamacpp import repack_weights

        env = {**os.environ, "LD_LIBRARY_PATH": f"{binary.resolve().parent}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
        # the weights' layout slmkit uses on this CPU (no repacking where llama.cpp's AMX kernels crash)
        repack = [] if repack_weights(llama_cpp) else ["--no-repack"]
        self.proc = subprocess.Popen([str(binary), "-m", str(artifact), "-t", str(threads), "-tb", str(threads),
                                      "-c", str(512 * parallel), "-np", str(parallel), "--no-webui", "-fa", "on",
                                      "--host", "127.0.0.1", "--port", str(self.port), *repack],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.time() + 60
        while time.time() < deadline and self.proc.poll() is None:
            try:
                if self.request("GET", "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.proc.kill()
        raise SlmkitError(f"{binary} did not start serving {artifact}")


def start_server(artifact: Path, args: argparse.Namespace) -> ServerProcess:
    """The server under test: the run's threads and slots, a queue deep enough that no client is refused."""
    return ServerProcess(artifact, "--threads", str(args.threads), "--parallel", str(args.parallel), "--max-queue", "64")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def ttft_burst(server: ServerProcess, clients: int, args: argparse.Namespace) -> list[float]:
    """Time to first token of one streaming request per client, all sent at the same moment."""
    barrier, out = threading.Barrier(clients), []

    def one(c: int) -> None:
        barrier.wait()
        out.append(server.complete(prompt(500 + c, args.prompt_tokens), 8).ttft)

    threads = [threading.Thread(target=one, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def run_level(artifact: Path, clients: int, args: argparse.Namespace, deadline: float, peer: Path | None = None) -> dict:
    server = LlamaServer(peer, artifact, args.threads, args.parallel) if peer else start_server(artifact, args)
    try:
        server.complete(prompt(0, args.prompt_tokens), 8)  # warm-up
        burst = ttft_burst(server, clients, args)
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
            "ttft_burst_p50_s": round(pct(burst, 50), 4), "errors": errors[:3]}


def run_peer(binary: Path, artifact: Path, args: argparse.Namespace, clients: list[int]) -> list[dict]:
    """llama-batched-bench's generation throughput at each sequence count (the same file and settings)."""
    ctx = max(clients) * (args.prompt_tokens + args.max_tokens) + 64
    cmd = [str(binary), "-m", str(artifact), "-t", str(args.threads), "-tb", str(args.threads), "-c", str(ctx),
           "-npp", str(args.prompt_tokens), "-ntg", str(args.max_tokens), "-npl", ",".join(map(str, clients)),
           "-fa", "on", "--output-format", "jsonl"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.time_limit)
    if r.returncode:
        raise SlmkitError(f"{binary} failed (exit {r.returncode}): {r.stderr.strip().splitlines()[-1:]}")
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return [{"sequences": row["pl"], "tg_tok_s": row["speed_tg"], "pp_tok_s": row["speed_pp"]} for row in rows]


def run_engine(artifact: Path, args: argparse.Namespace, clients: list[int]) -> list[dict]:
    """The server's engine without HTTP, in this process: for each count, a :class:`ContinuousBatch` of
    that many sequences is prefilled with the levels' prompts and stepped to ``--max-tokens``, as the
    peer's batched bench does. Decode-only tokens/s is the peer's ``S_TG`` measure; the backend's share
    of the decode time (``llama_decode`` and logits) against the rest (sampling, text, Python) says where
    a step's time goes."""
    from slmkit.loader import load
    from slmkit.runtimes.batching import ContinuousBatch

    rows = []
    with load(artifact, threads=args.threads) as rt:
        inner = rt._slots_eval
        spent = [0.0]

        def timed(*a: object):
            t = time.perf_counter()
            try:
                return inner(*a)
            finally:
                spent[0] += time.perf_counter() - t

        rt._slots_eval = timed  # type: ignore[method-assign]
        for c in clients:
            with ContinuousBatch(rt, c) as batch:
                t0 = time.perf_counter()
                handles = [batch.add(prompt(k, args.prompt_tokens), max_new_tokens=args.max_tokens, seed=k,
                                     temperature=0.7, ignore_eos=True) for k in range(c)]
                first = 0  # the prefill steps: every prompt evaluated, each sequence's first token sampled
                while any(batch.prefilling(h) for h in handles):
                    first += len(batch.step())
                t1, spent[0], tokens = time.perf_counter(), 0.0, 0
                while len(batch):
                    tokens += len(batch.step())
                t2 = time.perf_counter()
            rows.append({"sequences": c, "tokens": first + tokens, "prefill_s": round(t1 - t0, 3),
                         "decode_tok_s": round(tokens / (t2 - t1), 1), "backend_share": round(spent[0] / (t2 - t1), 3),
                         "with_prefill_tok_s": round((first + tokens) / (t2 - t0), 1)})
    return rows


def process_sample(pid: int) -> dict:
    """RSS (MiB), open file descriptors and threads of a process, from /proc (Linux) or psutil."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
        return {"rss_mb": int(status["VmRSS"].split()[0]) / 1024, "open_files": len(list((proc / "fd").iterdir())),
                "threads": int(status["Threads"])}
    import psutil

    p = psutil.Process(pid)
    return {"rss_mb": p.memory_info().rss / 2**20, "open_files": p.num_fds() if hasattr(p, "num_fds") else
            len(p.open_files()), "threads": p.num_threads()}


def soak(artifact: Path, args: argparse.Namespace) -> dict:
    """Mixed traffic from ``args.clients`` clients for ``args.soak`` seconds; resources sampled throughout."""
    import random

    server = start_server(artifact, args)
    counts: dict[str, int] = {}
    lock = threading.Lock()
    samples: list[dict] = []
    stop = time.time() + args.soak

    def count(key: str) -> None:
        with lock:
            counts[key] = counts.get(key, 0) + 1

    def post(body: dict, path: str = "/v1/completions", abandon: bool = False) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if abandon:
            r.readline()
            conn.sock.close()  # a client that goes away mid-stream
        else:
            r.read()
        conn.close()
        return r.status

    def client(c: int) -> None:
        rng = random.Random(c)
        k = 0
        while time.time() < stop:
            k += 1
            kind = rng.choice(["plain", "stream", "n4", "prompts", "abandon", "bad"])
            text = prompt(c * 1000 + k, rng.randint(4, args.prompt_tokens))
            try:
                if kind == "prompts":
                    status = post({"intent": " ".join(text.split()[:4]), "n": rng.randint(1, 4), "max_tokens": 32},
                                  "/v1/prompts")
                elif kind == "bad":  # the right answer to a bad request is a 400
                    status = 200 if post({"prompt": text, "max_tokens": -1}) == 400 else -400
                else:
                    body = {"prompt": text, "max_tokens": rng.randint(8, args.max_tokens), "seed": k,
                            "temperature": 0.8, "stream": kind in ("stream", "abandon"), "n": 4 if kind == "n4" else 1}
                    status = post(body, abandon=kind == "abandon")
            except Exception:  # noqa: BLE001 - a failed request is what the soak counts
                status = -1
            count(f"{kind} {'ok' if status == 200 else 'failed ' + str(status)}")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
    try:
        samples.append({"t": 0.0, **process_sample(server.proc.pid)})
        t0 = time.time()
        for t in threads:
            t.start()
        while time.time() < stop:
            time.sleep(min(10.0, max(0.1, stop - time.time())))
            samples.append({"t": round(time.time() - t0, 1), **process_sample(server.proc.pid)})
        for t in threads:
            t.join(300)
        metrics = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        metrics.request("GET", "/metrics")
        server_errors = sum(int(line.rsplit(" ", 1)[1]) for line in metrics.getresponse().read().decode().splitlines()
                            if line.startswith("slmkit_requests_total") and 'status="5' in line)
    finally:
        server.stop()
    failed = sum(n for k, n in counts.items() if "failed" in k)
    warm = samples[1] if len(samples) > 2 else samples[0]  # after the first interval: the model is loaded and warm
    return {"seconds": args.soak, "clients": args.clients, "requests": sum(counts.values()), "failed": failed,
            "server_5xx": server_errors, "by_kind": dict(sorted(counts.items())),
            "rss_mb_first_last_max": [round(warm["rss_mb"], 1), round(samples[-1]["rss_mb"], 1),
                                      round(max(s["rss_mb"] for s in samples), 1)],
            "open_files_first_last_max": [warm["open_files"], samples[-1]["open_files"],
                                          max(s["open_files"] for s in samples)],
            "threads_first_last_max": [warm["threads"], samples[-1]["threads"], max(s["threads"] for s in samples)],
            "samples": samples}


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
    ap.add_argument("--soak", type=float, default=None, help="seconds of mixed traffic at --clients (one level)")
    ap.add_argument("--peer", type=Path, help="llama-batched-bench binary: run the peer in the same run")
    ap.add_argument("--peer-server", type=Path,
                    help="llama-server binary: the same clients against it on the same file, threads and slots")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of every level (interleaved with the peer server)")
    ap.add_argument("--engine", action="store_true",
                    help="also the engine alone (no HTTP, this process): decode-only tok/s and the backend's share")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if not args.artifact.exists():
        raise SlmkitError(f"{args.artifact}: no such artifact")
    if args.soak:
        args.clients = int(args.clients.split(",")[-1])
        result = soak(args.artifact, args)
        print(f"soak: {result['requests']} requests in {args.soak:g} s at {args.clients} clients, {result['failed']} "
              f"failed, {result['server_5xx']} server errors; RSS MiB (after warm-up, end, max) "
              f"{result['rss_mb_first_last_max']}, open files {result['open_files_first_last_max']}, threads "
              f"{result['threads_first_last_max']}; {result['by_kind']}")
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return
    deadline = time.time() + args.time_limit
    levels, peer_levels = [], []
    for c in (int(x) for x in args.clients.split(",")):
        for rnd in range(args.rounds):  # interleaved: slmkit, then the peer, at each level and round
            row = run_level(args.artifact, c, args, deadline)
            levels.append({**row, "round": rnd})
            print(f"{c} clients: {row['tok_s']:.1f} tok/s ({row['tok_s'] / levels[0]['tok_s']:.2f}x), latency p50 "
                  f"{row['latency_p50_s']:.2f} s p95 {row['latency_p95_s']:.2f} s, per token p50 "
                  f"{row['per_token_p50_ms']:.1f} ms p95 {row['per_token_p95_ms']:.1f} ms, ttft p50 {row['ttft_p50_s']:.3f} s, "
                  f"ttft p50 of {c} sent together {1000 * row['ttft_burst_p50_s']:.1f} ms, {row['requests']} requests, "
                  f"{row['failed']} failed", flush=True)
            if args.peer_server:
                peer = run_level(args.artifact, c, args, deadline, peer=args.peer_server)
                peer_levels.append({**peer, "round": rnd})
                print(f"  llama-server, {c} clients: {peer['tok_s']:.1f} tok/s, ttft p50 of {c} sent together "
                      f"{1000 * peer['ttft_burst_p50_s']:.1f} ms; slmkit / llama-server: throughput "
                      f"{row['tok_s'] / peer['tok_s']:.2f}x, ttft {row['ttft_burst_p50_s'] / peer['ttft_burst_p50_s']:.2f}x",
                      flush=True)
    report = {"artifact": str(args.artifact), "threads": args.threads, "parallel": args.parallel,
              "max_tokens": args.max_tokens, "prompt_tokens": args.prompt_tokens, "cpu_count": os.cpu_count(),
              "levels": levels, **({"peer_server": peer_levels} if args.peer_server else {})}
    first_round = [lv for lv in levels if lv["round"] == 0]
    if args.engine:
        report["engine"] = run_engine(args.artifact, args, [lv["clients"] for lv in first_round])
        for row, lv in zip(report["engine"], first_round):
            print(f"engine alone, {row['sequences']} sequences: decode {row['decode_tok_s']:.1f} tok/s (backend "
                  f"{100 * row['backend_share']:.0f}% of it), with prefill {row['with_prefill_tok_s']:.1f} tok/s; "
                  f"slmkit serve / engine: {lv['tok_s'] / row['decode_tok_s']:.2f}", flush=True)
    if args.peer:
        report["peer"] = run_peer(args.peer, args.artifact, args, [lv["clients"] for lv in first_round])
        for row, lv in zip(report["peer"], first_round):
            print(f"peer llama-batched-bench, {row['sequences']} sequences: {row['tg_tok_s']:.1f} tok/s "
                  f"({row['tg_tok_s'] / report['peer'][0]['tg_tok_s']:.2f}x); slmkit serve / peer: "
                  f"{lv['tok_s'] / row['tg_tok_s']:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    run_script(main)
