"""Random sequences of Runtime calls on every backend: crashes, hangs and history-dependent results.

    python -m devtools.sequences ARTIFACT_OR_MODEL... [--sequences 10000] [--seed 0]

A backend keeps state between calls (KV caches, batched contexts, positions, paused streams), so each
artifact runs seeded random sequences of ``generate`` / ``stream`` / ``score`` / ``tokenize`` calls:
prompts from one token to past the context, ``n`` 1-8, ``max_new_tokens`` 0 to past the context, stop
strings, temperatures, top-k / top-p, seeds, streams paused, resumed or abandoned, calls from several
threads at once, ``close()`` during a call. Each artifact runs in a child process watched for a native
abort or a hang, which then names the sequence (seed and index) and is restarted after it.

Invariants checked on every call:
- it returns, or raises ``SlmkitError`` with one line; nothing else;
- the context limit is the same rule on every backend (error exactly when the request does not fit);
- history does not matter: the result equals the same call's on a second runtime with another history
  (reloaded fresh every 40 calls); a resumed stream equals the uninterrupted call;
- greedy ``n=k`` candidates are k copies of the greedy single sequence (a near-tie of the top two
  logits, under 0.05, at the first difference is counted apart, not failed);
- a paused stream blocks nothing; after ``close()`` every call is one clear error.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from devtools import child_env
from slmkit.errors import SlmkitError, run_script

# Batched decoding runs other kernels than one sequence (llama.cpp's 4-bit K-quant mat-muls round
# differently for 4 rows than for 1); at a greedy divergence the top two logits were then 0.037 apart
# (Q4_K_M, 107th token, ',' against end-of-text in a loop).
TIE_GAP = 0.05
RELOAD_ORACLE_EVERY = 40


# --- the calls ------------------------------------------------------------------------------------------
def prompts(rt) -> list[Any]:
    """Prompts from one token to past the context, text and ids, the demo's format and raw text."""
    from slmkit.prompts import build_prompt

    base = rt.tokenize(build_prompt("quiet harbor at dawn", "t2i", "short", "high"))
    tile = (base * (rt.n_ctx // len(base) + 2))
    return ["a", build_prompt("quiet harbor at dawn", "t2i", "short", "high"),
            build_prompt("a tailor sewing quilts in a greenhouse full of ferns under heavy rain", "search",
                         "long", "mid"),
            "The quick brown fox", "café ☕ 東京 naïve", tile[:rt.n_ctx - 9], tile[:rt.n_ctx], tile[:rt.n_ctx + 17]]


def random_call(rng: random.Random, n_prompts: int, n_ctx: int) -> dict:
    """One call's arguments (JSON-able, so a failing sequence can be printed and replayed)."""
    op = rng.choices(["generate", "stream", "score", "tokenize", "logprobs", "pause", "resume", "drop",
                      "threads"], [30, 10, 8, 4, 4, 8, 8, 3, 6])[0]
    call: dict[str, Any] = {"op": op, "prompt": rng.randrange(n_prompts)}
    if op in ("generate", "stream", "pause"):
        call.update(
            n=rng.choice([1, 1, 2, 3, 4, 8]) if op == "generate" else 1,
            max_new_tokens=rng.choice([0, 1, 2, 5, 8, 12, 16, n_ctx - 1, n_ctx + 5]),
            temperature=rng.choice([0.0, 0.0, 0.7, 1.3]), top_k=rng.choice([0, 0, 5]),
            top_p=rng.choice([1.0, 1.0, 0.9]), seed=rng.randrange(4),
            stop=rng.choice([[], [], [","], [" |"], ["zz", "e"]]), truncate=rng.random() < 0.2)
    if op == "pause":
        call["take"] = rng.randrange(1, 4)
    if op == "threads":
        call["calls"] = [random_call(rng, n_prompts, n_ctx) for _ in range(rng.randint(2, 4))]
        call["calls"] = [c for c in call["calls"] if c["op"] in ("generate", "stream", "score")] or \
            [{"op": "score", "prompt": 1}]
    return call


def sequence(seed: int, index: int, n_prompts: int, n_ctx: int) -> list[dict]:
    rng = random.Random(f"{seed}/{index}")
    calls = [random_call(rng, n_prompts, n_ctx) for _ in range(rng.randint(2, 6))]
    if rng.random() < 0.08:
        calls.append({"op": "close", "during": rng.random() < 0.5})
    return calls


def fits(call: dict, ids_len: int, n_ctx: int) -> bool:
    """The context rule every backend must follow."""
    if call["op"] in ("score", "logprobs"):
        return ids_len <= n_ctx
    m = call["max_new_tokens"]
    return 1 <= m <= n_ctx - 1 and (ids_len + m <= n_ctx or call["truncate"])


# --- running them ---------------------------------------------------------------------------------------
class Failure(Exception):
    pass


def _kwargs(call: dict) -> dict:
    return {k: (tuple(v) if k == "stop" else v) for k, v in call.items()
            if k in ("max_new_tokens", "temperature", "top_k", "top_p", "seed", "stop", "truncate")}


def _one_line(e: SlmkitError) -> None:
    msg = str(e)
    if not msg or "\n" in msg:
        raise Failure(f"SlmkitError without one clear line: {msg!r}")


class Worker:
    """Runs sequences on runtime A and checks each result against runtime B (another history)."""

    def __init__(self, path: str | None):
        self.path = path
        self.a = self._load()
        self.b = self._load()
        self.b_calls = 0
        self.oracle: dict[str, Any] = {}
        self.prompts = prompts(self.a)
        self.paused: list[tuple[dict, Any, str]] = []
        self.counts: Counter = Counter()

    def _load(self):
        from slmkit import load

        return load(self.path, device="cpu", threads=1)

    def _ids_len(self, prompt) -> int:
        return len(prompt) if isinstance(prompt, list) else len(self.a.tokenize(prompt))

    def _do(self, rt, call: dict) -> Any:
        p = self.prompts[call["prompt"]]
        op = call["op"]
        if op == "generate":
            return rt.generate(p, n=call["n"], **_kwargs(call))
        if op == "stream":
            return "".join(rt.stream(p, **_kwargs(call)))
        if op == "score":
            return rt.score(p)
        if op == "logprobs":
            return rt.token_logprobs(p)
        if op == "tokenize":
            return rt.tokenize(p) if isinstance(p, str) else rt.detokenize(p)
        raise ValueError(op)

    def expected(self, call: dict) -> Any:
        """The same call on runtime B (cached): None when it raised SlmkitError."""
        key = json.dumps({k: v for k, v in call.items() if k != "take"} | {"op": "generate" if call["op"] in
                         ("stream", "pause") else call["op"], "n": call.get("n", 1)}, sort_keys=True)
        if key not in self.oracle:
            if self.b_calls and self.b_calls % RELOAD_ORACLE_EVERY == 0:
                self.b.close()
                self.b = self._load()
            self.b_calls += 1
            try:
                self.oracle[key] = self._do(self.b, {**call, "op": "generate" if call["op"] in ("stream", "pause")
                                                     else call["op"], "n": call.get("n", 1)})
            except SlmkitError:
                self.oracle[key] = None
        return self.oracle[key]

    def check(self, call: dict, got: Any, error: SlmkitError | None) -> None:
        if call["op"] in ("generate", "stream", "pause", "score", "logprobs"):
            ok = fits(call, self._ids_len(self.prompts[call["prompt"]]), self.a.n_ctx)
            if ok != (error is None):
                raise Failure(f"context rule: fits={ok} but {'error: ' + str(error) if error else 'no error'}")
        want = self.expected(call)
        if error is not None:
            _one_line(error)
            if want is not None:
                raise Failure(f"error on A ({error}) but not on B")
            return
        if isinstance(got, np.ndarray):
            if want is None or want.shape != got.shape or not np.array_equal(want, got):
                raise Failure(f"{call['op']} differs from another history's "
                              f"(max |diff| {np.abs(want - got).max() if want is not None and want.shape == got.shape else 'shape'})")
            return
        if got != want:
            raise Failure(f"{call['op']} differs from another history's: {got!r} != {want!r}")
        if call["op"] == "generate" and call["n"] > 1 and call["temperature"] == 0.0:
            self._greedy_copies(call, got)

    def _greedy_copies(self, call: dict, got: list[str]) -> None:
        single = self.expected({**call, "n": 1})
        for cand in got:
            if cand != single:
                if self._near_tie(call, cand, single):
                    self.counts["greedy_near_ties"] += 1
                    return
                raise Failure(f"greedy n={call['n']} candidate {cand!r} != single sequence {single!r}")

    def _near_tie(self, call: dict, a: str, b: str) -> bool:
        """Whether the first token where two continuations part had its top two logits within TIE_GAP."""
        p = self.prompts[call["prompt"]]
        ids = self.a.tokenize(p) if isinstance(p, str) else list(p)
        ids = ids[max(0, len(ids) + call["max_new_tokens"] - self.a.n_ctx):]  # as truncate=True cut it
        ta, tb = self.a.tokenize(a), self.a.tokenize(b)
        k = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))  # or one ended
        seq = (ids + ta[:k])[-self.a.n_ctx:]
        top = np.sort(self.a.score(seq)[-1])[-2:]
        return float(top[1] - top[0]) < TIE_GAP

    def run_call(self, call: dict) -> None:
        op = call["op"]
        self.counts["calls"] += 1
        if op == "pause":
            try:
                it = self.a.stream(self.prompts[call["prompt"]], **_kwargs(call))
                taken = "".join(x for _, x in zip(range(call["take"]), it))
            except SlmkitError as e:
                return self.check(call, None, e)
            self.paused.append((call, it, taken))
        elif op in ("resume", "drop"):
            if self.paused:
                pc, it, taken = self.paused.pop(0)
                if op == "resume":
                    try:
                        text = taken + "".join(it)
                    except SlmkitError as e:
                        return self.check(pc, None, e)
                    self.counts["resumed_streams"] += 1
                    self.check(pc, text, None)
        elif op == "threads":
            results: list[tuple[dict, Any, SlmkitError | None]] = []

            def work(c: dict) -> None:
                try:
                    results.append((c, self._do(self.a, c), None))
                except SlmkitError as e:
                    results.append((c, None, e))

            threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in call["calls"]]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
                if t.is_alive():
                    raise Failure("a call from a thread did not return within 120 s")
            for c, got, err in results:
                self.check(c, got, err)
        elif op == "close":
            self._close(call)
        else:
            try:
                got = self._do(self.a, call)
            except SlmkitError as e:
                return self.check(call, None, e)
            self.check(call, got, None)

    def _close(self, call: dict) -> None:
        if call["during"]:
            done: list[Any] = []

            def long_call() -> None:
                try:
                    done.append(self.a.generate(self.prompts[1], n=4, max_new_tokens=48, temperature=1.0))
                except SlmkitError as e:
                    _one_line(e)
                    done.append(e)

            t = threading.Thread(target=long_call, daemon=True)
            t.start()
            time.sleep(0.01)
            self.a.close()
            t.join(60)
            if t.is_alive():
                raise Failure("a call in progress did not end after close()")
        else:
            self.a.close()
        for c, it, _ in self.paused:
            try:
                "".join(it)
                if c["max_new_tokens"] > c["take"]:
                    self.counts["paused_streams_ended_before_close"] += 1
            except SlmkitError as e:
                _one_line(e)
        self.paused.clear()
        try:
            self.a.generate("a", max_new_tokens=2)
            raise Failure("a call after close() did not raise")
        except SlmkitError as e:
            _one_line(e)
        self.a = self._load()

    def run(self, calls: list[dict]) -> None:
        for call in calls:
            self.run_call(call)


def worker_main(path: str | None, seed: int, start: int, count: int) -> None:
    """Child process: run sequences start..start+count-1, one JSON line each."""
    w = Worker(path)
    n_prompts, n_ctx = len(w.prompts), w.a.n_ctx
    for i in range(start, start + count):
        print(json.dumps({"begin": i}), flush=True)
        try:
            w.run(sequence(seed, i, n_prompts, n_ctx))
            status = {"seq": i, "ok": True}
        except Failure as e:
            status = {"seq": i, "ok": False, "kind": "wrong", "detail": str(e)[:400]}
        except Exception as e:  # noqa: BLE001 - an exception other than SlmkitError is a finding
            status = {"seq": i, "ok": False, "kind": "exception", "detail": f"{type(e).__name__}: {e}"[:400]}
        print(json.dumps(status), flush=True)
    print(json.dumps({"end": True, "counts": w.counts}), flush=True)


# --- the campaign ---------------------------------------------------------------------------------------
def campaign(path: str | None, sequences: int, seed: int = 0, hang_s: float = 60.0) -> dict:
    """Run ``sequences`` sequences on one artifact in child processes; count outcomes."""
    result: dict[str, Any] = {"artifact": path or "demo model (fp16 reference)", "sequences": 0, "crashes": 0,
                              "hangs": 0, "wrong": 0, "exceptions": 0, "findings": [], "counts": Counter()}
    start = 0
    while start < sequences:
        cmd = [sys.executable, "-m", "devtools.sequences", "--worker", str(path or ""), "--seed", str(seed),
               "--start", str(start), "--count", str(sequences - start)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=child_env(PYTHONUNBUFFERED="1"))
        current, last = start, time.time()
        timer = threading.Timer(hang_s, proc.kill)
        timer.start()
        for line in proc.stdout:
            timer.cancel()
            try:
                msg = json.loads(line)
            except ValueError:  # native code writing to stdout (an abort's backtrace)
                msg = {}
            if "begin" in msg:
                current = msg["begin"]
            elif "seq" in msg:
                result["sequences"] += 1
                if result["sequences"] % 500 == 0:
                    print(f"  {result['artifact']}: {result['sequences']} sequences, "
                          f"{len(result['findings'])} findings", file=sys.stderr, flush=True)
                if not msg["ok"]:
                    result["wrong" if msg["kind"] == "wrong" else "exceptions"] += 1
                    result["findings"].append({"seq": msg["seq"], "kind": msg["kind"], "detail": msg["detail"]})
                current = msg["seq"] + 1
            elif "end" in msg:
                result["counts"].update(msg["counts"])
            timer = threading.Timer(hang_s, proc.kill)
            timer.start()
            last = time.time()
        timer.cancel()
        rc = proc.wait()
        stderr = proc.stderr.read()
        if current >= sequences and rc == 0:
            break
        hung = time.time() - last >= hang_s - 1
        kind = "hang" if hung else "crash"
        result["sequences"] += 1
        result["hangs" if hung else "crashes"] += 1
        lines = stderr.strip().splitlines()
        cause = next((ln for ln in lines if "ASSERT" in ln or "error" in ln.lower()), lines[-1] if lines else "")
        result["findings"].append({"seq": current, "kind": kind, "detail": f"exit {rc}; {cause.strip()}"[:400]})
        start = current + 1
    result["counts"] = dict(result["counts"])
    return result


def describe(seed: int, index: int, path: str | None) -> list[dict]:
    """The calls of one sequence (to replay a finding)."""
    from slmkit import load

    with load(path, device="cpu", threads=1) as rt:
        return sequence(seed, index, len(prompts(rt)), rt.n_ctx)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="*", help="GGUF / ONNX files or model folders (default: the demo model)")
    ap.add_argument("--sequences", type=int, default=10_000, help="per artifact")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--describe", type=int, help="print the calls of sequence N and exit")
    args = ap.parse_args(argv)
    if args.worker is not None:
        return worker_main(args.worker or None, args.seed, args.start, args.count)
    paths = args.artifacts or [None]
    if args.describe is not None:
        print(json.dumps(describe(args.seed, args.describe, paths[0]), indent=1))
        return
    from slmkit import load

    for p in paths:  # an unusable artifact is one clear error here, not a "crash" in every sequence
        load(p, device="cpu", threads=1).close()
    rows = []
    print("| artifact | sequences | calls | crashes | hangs | history-dependent / wrong | other exceptions | "
          "near-ties | resumed streams | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for p in paths:
        t0 = time.time()
        r = campaign(p, args.sequences, args.seed)
        r["seconds"] = round(time.time() - t0, 1)
        rows.append(r)
        c = r["counts"]
        print(f"| {Path(p).name if p else 'fp16 reference'} | {r['sequences']} | {c.get('calls', 0)} | {r['crashes']} | "
              f"{r['hangs']} | {r['wrong']} | {r['exceptions']} | {c.get('greedy_near_ties', 0)} | "
              f"{c.get('resumed_streams', 0)} | {r['seconds']} |", flush=True)
        for f in r["findings"][:5]:
            print(f"  seq {f['seq']} ({f['kind']}): {f['detail']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if any(r["findings"] for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    run_script(main)
