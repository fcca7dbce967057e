"""Load and fault campaign for ``slmkit serve``: no request may hang, fail unexplained, or leak a slot.

    python -m devtools.serve_faults ARTIFACT [--requests 2000] [--clients 12] [--rate 0.01] [--parallel 8]
        [--max-queue 16] [--timeout 20] [--threads 1] [--seed 0] [--json FILE]

A server child process (``python -m devtools.serve_faults serve ...``: ``slmkit serve`` with its backend
wrapped) raises an injected exception in a backend call at random (``--rate`` per call, prompt and decode
calls alike), as a failed ``llama_decode`` or an out-of-memory would. Clients on loopback then send, at
random: plain and streaming completions (n up to 3), requests whose client goes away mid-request (streaming
and not), slow readers, chunked bodies over the size limit; and a burst of 100 requests at once against the
queue. Every request is bounded by the server's ``--timeout`` plus one second on the client side.

One summary line: requests, hung (no answer by the deadline + 1 s), 5xx that were not injected, slots
leaked (slots not free once the traffic is over); exit 1 when any of the three is not 0.
"""
from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from slmkit.benchmarks.serve_load import ServerProcess
from slmkit.errors import run_script

INJECTED = "injected fault"
KINDS = {"plain": 5, "stream": 4, "drop": 1, "drop_stream": 1, "slow": 1, "chunked": 1}


class InjectedFault(RuntimeError):
    """What the wrapped backend raises."""


def inject(rt: Any, rate: float, seed: int, delay: float = 0.0, fail_first: int = 0, exit_at: int = 0) -> None:
    """Wrap ``rt._slots_eval`` (every backend call of continuous batching): each call sleeps ``delay`` s and
    then fails with :class:`InjectedFault` with probability ``rate``; the first ``fail_first`` calls always
    fail; call number ``exit_at`` (from 1) raises SystemExit, which ends the engine's worker thread."""
    inner, rng, lock = rt._slots_eval, random.Random(seed), threading.Lock()
    calls = [0]

    def faulty(parts):
        if delay:
            time.sleep(delay)
        with lock:
            calls[0] += 1
            fail = rng.random() < rate or calls[0] <= fail_first
        if calls[0] == exit_at:
            raise SystemExit("injected exit")
        if fail:
            where = "decode" if all(len(ids) == 1 for _, ids, _ in parts) else "prefill"
            raise InjectedFault(f"{INJECTED} in {where}")
        return inner(parts)

    rt._slots_eval = faulty


def serve_child(argv: list[str]) -> None:
    """``slmkit serve`` with the backend wrapped by :func:`inject` (what the campaign starts)."""
    p = argparse.ArgumentParser(prog="serve_faults serve")
    p.add_argument("artifact")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--max-queue", type=int, default=16)
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rate", type=float, default=0.01)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--exit-at", type=int, default=0)
    a = p.parse_args(argv)
    import slmkit.loader
    from slmkit.server.run import serve

    plain_load = slmkit.loader.load

    def load(*args: Any, **kwargs: Any):
        rt = plain_load(*args, **kwargs)
        inject(rt, a.rate, a.seed, a.delay, a.fail_first, a.exit_at)
        return rt

    slmkit.loader.load = load
    serve(a.artifact, port=a.port, parallel=a.parallel, max_queue=a.max_queue, timeout=a.timeout, threads=a.threads)


class FaultyServer(ServerProcess):
    """The child server, its stderr drained (a full pipe would block it: a hang of the campaign's own)."""

    def __init__(self, artifact: Path, *args: str):
        super().__init__(artifact, *args, command=("devtools.serve_faults", "serve"), env={"OMP_WAIT_POLICY": "PASSIVE"})
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()


def classify(status: int, body: str) -> str:
    """What an answer means for the campaign: ok, injected, refused (a full queue), rejected (413) or a
    failure (5xx not injected, other)."""
    if status == 200:
        events = [ln[6:] for ln in body.splitlines() if ln.startswith("data: {")]
        errors = [json.loads(e)["error"] for e in events if '"error"' in e[:10]]
        if errors:
            return "injected" if INJECTED in errors[0].get("message", "") else "5xx not injected"
        return "ok"
    if status == 500 and INJECTED in body:
        return "injected"
    if status == 503 and "queue_full" in body:
        return "refused"
    if status == 413:
        return "rejected"
    return "5xx not injected" if status >= 500 else f"status {status}"


def send(port: int, kind: str, rng: random.Random, limit: float) -> str:
    """One request of ``kind``; its outcome (:func:`classify`, or dropped / hung)."""
    t0 = time.monotonic()
    stream = kind in ("stream", "drop_stream", "slow")
    body = {"prompt": rng.choice(["a cozy cabin", "red bicycle at dawn", "harbor", "x " * rng.randint(1, 60)]),
            "max_tokens": rng.randint(1, 40), "n": rng.randint(1, 3), "temperature": 0.8, "seed": rng.randint(0, 99),
            "stream": stream}
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=limit)
    try:
        if kind == "chunked":
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            piece = b"x" * 65536
            try:
                for _ in range(20):  # 1.25 MiB, over the 1 MiB limit
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sock.sendall(b"0\r\n\r\n")
            except OSError:  # the server answered 413 and closed while the body was still coming
                pass
        else:
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        if kind == "drop":
            time.sleep(rng.uniform(0, 0.2))
            return "dropped"
        raw = b""
        while True:
            try:
                got = sock.recv(64 if kind == "slow" else 65536)
            except (socket.timeout, TimeoutError):
                return "hung"
            except OSError:
                break
            if not got:
                break
            raw += got
            if kind == "drop_stream" and b"data: " in raw:
                return "dropped"
            if kind == "slow":
                time.sleep(0.002)
            if time.monotonic() - t0 > limit:
                return "hung"
            if kind == "chunked" and b"\r\n\r\n" in raw:
                break
    finally:
        sock.close()
    if time.monotonic() - t0 > limit:
        return "hung"
    head, _, rest = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return "no answer"
    return classify(status, rest.decode(errors="replace"))


def campaign(artifact: Path, args: argparse.Namespace) -> dict:
    server = FaultyServer(artifact, "--parallel", str(args.parallel), "--max-queue", str(args.max_queue),
                          "--timeout", str(args.timeout), "--threads", str(args.threads), "--rate", str(args.rate),
                          "--seed", str(args.seed))
    outcomes: Counter[str] = Counter()
    limit = args.timeout + 1.0
    lock = threading.Lock()

    def one(k: int, kind: str | None = None) -> None:
        rng = random.Random(args.seed * 100_003 + k)
        kind = kind or rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
        try:
            outcome = send(server.port, kind, rng, limit)
        except OSError as e:
            outcome = f"connection error ({type(e).__name__})"
        with lock:
            outcomes[outcome] += 1

    t0 = time.monotonic()
    try:
        burst = min(100, args.requests)
        with ThreadPoolExecutor(burst) as pool:  # the burst: all at once against the queue
            list(pool.map(lambda k: one(k, "plain"), range(burst)))
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(one, range(burst, args.requests)))
        deadline = time.monotonic() + 10
        while True:  # the traffic is over: every slot must come free
            status, _, health = server.request("GET", "/health")
            if (status == 200 and not health["active"] and not health["queued"]) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        leaked = args.parallel - health.get("slots_free", 0) if isinstance(health, dict) else args.parallel
    finally:
        code = server.stop()
    failures = {k: v for k, v in outcomes.items()
                if k not in ("ok", "injected", "refused", "rejected", "dropped", "hung", "5xx not injected")}
    return {"requests": sum(outcomes.values()), "hung": outcomes["hung"], "uninjected_5xx": outcomes["5xx not injected"],
            "slots_leaked": leaked, "outcomes": dict(outcomes), "other_failures": failures, "health": health,
            "server_exit": code, "seconds": round(time.monotonic() - t0, 1), "rate": args.rate}


def summary(r: dict) -> str:
    return (f"requests {r['requests']}, hung {r['hung']}, 5xx not injected {r['uninjected_5xx']}, slots leaked "
            f"{r['slots_leaked']} (injected {r['outcomes'].get('injected', 0)}, ok {r['outcomes'].get('ok', 0)}, "
            f"refused {r['outcomes'].get('refused', 0)}, dropped {r['outcomes'].get('dropped', 0)}, 413 "
            f"{r['outcomes'].get('rejected', 0)}, other {sum(r['other_failures'].values())}; {r['seconds']} s)")


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        serve_child(argv[1:])
        return {}
    p = argparse.ArgumentParser(prog="python -m devtools.serve_faults", description=__doc__.split("\n\n")[0])
    p.add_argument("artifact", type=Path)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--clients", type=int, default=12)
    p.add_argument("--rate", type=float, default=0.01, help="probability that a backend call fails")
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--max-queue", type=int, default=16)
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    r = campaign(a.artifact, a)
    print(summary(r))
    if a.json:
        a.json.write_text(json.dumps(r, indent=2))
    return r


def cli() -> None:
    r = main()
    if r and (r["hung"] or r["uninjected_5xx"] or r["slots_leaked"] or r["other_failures"]):
        sys.exit(1)


if __name__ == "__main__":
    run_script(cli)
