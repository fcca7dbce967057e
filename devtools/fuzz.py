"""Fuzzing campaign: mutated GGUF, ONNX, safetensors, config.json and tokenizer files (tokenizer.json, or
vocab.json + merges.txt + added_tokens.json) must give a clean one-line error or a correct load, never a
crash, a hang or another exception.

    python -m devtools.fuzz [--cases 500] [--kinds gguf,onnx,...] [--seed 0] [--json FILE]

The mutations (:func:`mutate`) and the load-and-use check (:func:`try_load`) are shared with the
property-based tests in ``tests/test_hostile.py``, which draw the mutations with hypothesis. Here each
kind runs in a child process that logs every case before trying it: a child that dies is a crash at
that case, a child silent for ``--hang-s`` is a hang; both are counted and the campaign goes on.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

from devtools import child_env
from slmkit.errors import SlmkitError, run_script

KINDS = ("gguf", "onnx", "safetensors", "config", "tokenizer", "vocab", "merges", "added_tokens")
BYTE_OPS = ("truncate", "flip", "u32", "u64", "zero", "duplicate")
JSON_OPS = ("json_value", "json_drop")
NASTY = [None, True, -1, 0, 1, 2**31, 2**63, -(2**63), 1e308, 0.5, "", "x" * 10_000, [], {}, [1, 2], {"a": 1}]
TARGETS = {"gguf": "model-Q8_0.gguf", "onnx": "model-int8.onnx", "safetensors": "model.safetensors",
           "config": "config.json", "tokenizer": "tokenizer.json", "vocab": "vocab.json", "merges": "merges.txt",
           "added_tokens": "added_tokens.json"}


def ops_for(kind: str) -> tuple[str, ...]:
    return BYTE_OPS + JSON_OPS if TARGETS[kind].endswith(".json") else BYTE_OPS


def mutate(data: bytes, op: str, pos: int, value: int) -> bytes:
    """One mutation of ``data`` at byte ``pos`` (taken modulo the size); ``value`` picks what is written."""
    n = len(data)
    pos = pos % max(n, 1)
    if op == "truncate":
        return data[:pos]
    if op == "flip":
        return data[:pos] + bytes([data[pos] ^ (1 << (value % 8))]) + data[pos + 1:]
    if op in ("u32", "u64"):
        width = 4 if op == "u32" else 8
        word = [0, 1, 2**(8 * width) - 1, 2**(8 * width - 1), value % 2**(8 * width)][value % 5]
        return data[:pos] + struct.pack("<I" if width == 4 else "<Q", word) + data[pos + width:]
    if op == "zero":
        return data[:pos] + bytes(min(64, n - pos)) + data[pos + 64:]
    if op == "duplicate":
        return data[:pos] + data[pos:pos + 256] + data[pos:]
    if op in JSON_OPS:
        obj = json.loads(data)
        paths = list(_json_paths(obj))
        if not paths:
            return data
        parent, key = paths[pos % len(paths)]
        if op == "json_drop":
            del parent[key]
        else:
            parent[key] = NASTY[value % len(NASTY)]
        return json.dumps(obj).encode()
    raise ValueError(f"unknown mutation {op}")


def _json_paths(obj, depth: int = 0):
    """(container, key) pairs of a JSON document, at most three levels deep and 2000 in all."""
    if depth > 2:
        return
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for i, (key, value) in enumerate(items):
        if i > 2000:
            return
        yield obj, key
        yield from _json_paths(value, depth + 1)


def regions(kind: str, original: bytes) -> list[tuple[int, int]]:
    """Byte ranges worth mutating: the start of the file and, for GGUF, the tensor table (just before the
    tensor data), where offsets, types and dimensions live."""
    spans = [(0, min(len(original), 4096))]
    if kind == "gguf":
        from slmkit.gguf_file import _parse

        _, tensors = _parse(original, Path("original.gguf"))
        start = min(t.offset for t in tensors)
        spans.append((max(0, start - 4096), start))
    return spans


def prepare(kind: str, base: Path, model: Path | None = None) -> tuple[Path, bytes]:
    """A folder holding a small real file of ``kind`` (and what loading it needs); returns the folder and
    the file's original bytes. ``model``: a GPT-2 folder (a tiny random one is written when None; the
    vocab.json + merges.txt kinds always get one with the demo tokenizer in that layout)."""
    from slmkit.synthetic import write_random_gpt2

    folder = base / kind
    if folder.is_dir():
        return folder, (base / f"{kind}.orig").read_bytes()
    if kind in ("vocab", "merges", "added_tokens"):
        src = base / "tiny-model-files"
        if not src.is_dir():
            write_random_gpt2(src, n_embd=64, n_layer=2, n_head=4, tokenizer="demo-files")
    else:
        src = model or write_random_gpt2(base / "tiny-model", n_embd=64, n_layer=2, n_head=4)
    if kind in ("gguf", "onnx"):
        from slmkit.converters.gguf_pipeline import convert_gguf
        from slmkit.converters.onnx_pipeline import convert_onnx
        from slmkit.demo.dataset import workload
        from slmkit.model_folder import open_model_folder

        texts = workload(8).texts  # few: the checks run once per kind, outside the timed cases
        built = base / f"{kind}-built"
        folder_ = open_model_folder(src)
        if kind == "gguf":
            manifest = convert_gguf(folder_, ["q8_0"], built, 1, log=lambda _m: None, texts=texts)
        else:
            manifest = convert_onnx(folder_, ["int8"], built, 1, log=lambda _m: None, texts=texts)
        shutil.copytree(built, folder)
        name = next(iter(n for n in manifest["artifacts"] if n.endswith(kind)))
        (folder / "manifest.json").unlink()
        (folder / name).rename(folder / TARGETS[kind])
    else:
        shutil.copytree(src, folder)
    original = (folder / TARGETS[kind]).read_bytes()
    (base / f"{kind}.orig").write_bytes(original)
    return folder, original


PROBE = "<|task:t2i|> a cozy cabin, ünïcode"


def fingerprint(kind: str, folder: Path) -> str:
    """Load and use the file the way slmkit would; a digest of what came out (logits, generated and
    decoded text, weights, token ids), or "nonfinite" when a model gives NaN / inf logits. A clean
    failure raises SlmkitError; any other exception propagates: that is a bug."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    if kind in ("gguf", "onnx"):
        from slmkit.loader import load

        with load(folder / TARGETS[kind], verify=False, threads=1) as rt:
            logits = rt.score(PROBE)
            if not np.isfinite(logits).all():
                return "nonfinite"
            h.update(np.round(logits, 2).tobytes())
            h.update(rt.generate(PROBE, max_new_tokens=4).encode())
            h.update("|".join(rt.generate(PROBE, n=2, max_new_tokens=3, temperature=1.0)).encode())
    elif kind in ("safetensors", "config"):
        from slmkit.model_folder import open_model_folder
        from slmkit.weights import load_weights

        folder_ = open_model_folder(folder)
        h.update(repr(folder_.shape).encode())
        for name, w in sorted(load_weights(folder_).items()):
            h.update(name.encode() + np.ascontiguousarray(w).tobytes())
    else:  # tokenizer files: as a model folder's, then encode and decode
        from slmkit.model_folder import open_model_folder
        from slmkit.tokenizer import TextTokenizer

        open_model_folder(folder)
        tok = TextTokenizer.from_folder(folder)
        ids = tok.encode(PROBE)
        h.update(repr(ids).encode() + tok.decode(ids).encode())
    return h.hexdigest()


_ORIGINAL: dict[tuple[str, Path], str] = {}


def try_load(kind: str, folder: Path) -> str:
    """"ok" (loads and gives exactly what the unmutated file gives), "changed" (loads, gives something
    else: the mutation reached the data, undetected, as it must be where nothing is checksummed),
    "nonfinite" (loads, NaN / inf logits) or "error" (a clean one-line SlmkitError). The unmutated
    file's digest is taken first. Any other exception propagates: that is a bug."""
    key = (kind, folder)
    if key not in _ORIGINAL:
        raise RuntimeError("call original_fingerprint() before mutating")
    try:
        digest = fingerprint(kind, folder)
    except SlmkitError as e:
        if "\n" in str(e) or not str(e):
            raise AssertionError(f"error message is not one line: {str(e)!r}") from None
        return "error"
    return "ok" if digest == _ORIGINAL[key] else "nonfinite" if digest == "nonfinite" else "changed"


def original_fingerprint(kind: str, folder: Path) -> str:
    """The unmutated file's digest (it must load cleanly and give finite logits)."""
    key = (kind, folder)
    if key not in _ORIGINAL:
        digest = fingerprint(kind, folder)
        if digest == "nonfinite":
            raise AssertionError(f"the unmutated {kind} file gives non-finite logits")
        _ORIGINAL[key] = digest
    return _ORIGINAL[key]


def run_case(kind: str, folder: Path, original: bytes, op: str, pos: int, value: int) -> str:
    try:
        data = mutate(original, op, pos, value)
    except (ValueError, json.JSONDecodeError):
        return "skipped"
    (folder / TARGETS[kind]).write_bytes(data)
    try:
        return try_load(kind, folder)
    finally:
        (folder / TARGETS[kind]).write_bytes(original)


def _child(kind: str, base: Path, seed: int, start: int, cases: int, log: Path) -> None:
    """Run cases start..cases-1 of one kind, logging each before and after it."""
    folder, original = prepare(kind, base)
    original_fingerprint(kind, folder)
    spans = regions(kind, original)
    with open(log, "a", buffering=1) as out:
        for i in range(start, cases):
            rng = random.Random(f"{seed}-{kind}-{i}")
            op = rng.choice(ops_for(kind))
            lo, hi = rng.choice(spans + [(0, len(original))])
            pos = rng.randrange(lo, hi)
            value = rng.randrange(2**32)
            out.write(json.dumps({"case": i, "op": op, "pos": pos, "value": value, "state": "start"}) + "\n")
            try:
                result = run_case(kind, folder, original, op, pos, value)
            except Exception as e:  # noqa: BLE001 - an unclean exception is what the campaign counts
                result = f"unclean: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
            out.write(json.dumps({"case": i, "state": "done", "result": result}) + "\n")


def campaign(kind: str, base: Path, cases: int, seed: int, hang_s: float) -> dict:
    log = base / f"{kind}.log"
    log.unlink(missing_ok=True)
    counts = {"cases": 0, "ok": 0, "changed": 0, "nonfinite": 0, "error": 0, "skipped": 0, "unclean": 0, "crash": 0,
              "hang": 0}
    examples: list[str] = []
    start, t0 = 0, time.time()
    prepare(kind, base)  # built once, outside the timed children
    while start < cases:
        p = subprocess.Popen([sys.executable, "-m", "devtools.fuzz", "--child", kind, str(base),
                              str(seed), str(start), str(cases), str(log)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env())
        last_size, last_change, hung = -1, time.time(), False
        while p.poll() is None:
            time.sleep(0.2)
            size = log.stat().st_size if log.exists() else 0
            if size != last_size:
                last_size, last_change = size, time.time()
            elif time.time() - last_change > hang_s:
                hung = True
                p.kill()
                p.wait()
                break
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
        log.unlink(missing_ok=True)
        started = None
        for r in records:
            if r["state"] == "start":
                started = r
            else:
                counts["cases"] += 1
                key = r["result"].split(":")[0]
                counts[key] += 1
                if key == "unclean" and len(examples) < 10:
                    examples.append(f"{kind} case {r['case']}: {r['result']}")
                started = None
        if started is None:
            break  # the child finished every case
        # the child died or hung inside `started`
        how = "hang" if hung else "crash"
        counts["cases"] += 1
        counts[how] += 1
        if len(examples) < 10:
            examples.append(f"{kind} case {started['case']}: {how} (exit {p.returncode}) on {started['op']} at "
                            f"{started['pos']} value {started['value']}")
        start = started["case"] + 1
    counts["seconds"] = round(time.time() - t0, 1)
    return {"kind": kind, **counts, "examples": examples}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        kind, base, seed, start, cases, log = argv[1:7]
        _child(kind, Path(base), int(seed), int(start), int(cases), Path(log))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=500, help="cases per file kind")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hang-s", type=float, default=30.0)
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    import tempfile

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="slmkit-fuzz-") as tmp:
        base = args.work or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        rows = [campaign(k, base, args.cases, args.seed, args.hang_s) for k in args.kinds.split(",")]
    print("| file kind | cases | loaded, same results | loaded, changed results | NaN logits | clean error | skipped "
          "| unclean exception | crash | hang | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['cases']} | {r['ok']} | {r['changed']} | {r['nonfinite']} | {r['error']} | "
              f"{r['skipped']} | {r['unclean']} | {r['crash']} | {r['hang']} | {r['seconds']} |")
    for r in rows:
        for e in r["examples"]:
            print("  " + e)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if any(r["unclean"] or r["crash"] or r["hang"] for r in rows) else 0


if __name__ == "__main__":
    run_script(main)
