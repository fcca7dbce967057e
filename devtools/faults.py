"""Fault injection during ``slmkit quantize``: SIGINT and SIGKILL at many moments, and disk-full writes
(a file-size limit, so native writes fail too). Nothing may be lost or half-written.

    python -m devtools.faults [--kills 20] [--formats gguf,onnx] [--json FILE]

After every fault the artifact folder must hold either the previous complete artifacts or none: every
listed file exists with its manifest sha256, the manifest parses, and a file under a final name that is
not listed yet (killed between its rename and its manifest entry) is whole. The tests in ``tests/test_faults.py`` run a few of the same faults.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from slmkit.errors import SlmkitError, run_script
from slmkit.files import TMP_PREFIX, sha256_file
from slmkit.gguf_file import open_gguf
from slmkit.onnx_file import inspect_onnx

ARTIFACT_SUFFIXES = (".gguf", ".onnx", ".data")


def quantize_command(model: Path, fmt: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "slmkit", "quantize", str(model), "--format", fmt, "--out", str(out), "--threads", "1"]


def folder_problems(folder: Path, previous: dict[str, str] | None = None) -> list[str]:
    """What is wrong with an artifact folder after a fault ([] when nothing). ``previous``: name -> sha256
    of artifacts that were complete before the fault and must still be."""
    problems = []
    manifest_path = folder / "manifest.json"
    listed: dict[str, str] = {}
    if manifest_path.exists():
        try:
            listed = {n: e["sha256"] for n, e in json.loads(manifest_path.read_text())["artifacts"].items()}
        except (ValueError, KeyError, TypeError):
            return ["manifest.json is not a complete manifest"]
    for name, sha in listed.items():
        if not (folder / name).is_file():
            problems.append(f"{name} is in the manifest but missing")
        elif sha256_file(folder / name) != sha:
            problems.append(f"{name} does not match its manifest sha256 (partial or corrupt)")
    for p in folder.iterdir() if folder.is_dir() else ():
        if p.suffix in (".gguf", ".onnx") and not p.name.startswith(TMP_PREFIX) and p.name not in listed:
            # killed between an artifact's rename and its manifest entry: it must be whole
            try:
                open_gguf(p) if p.suffix == ".gguf" else inspect_onnx(p)
            except SlmkitError as e:
                problems.append(f"{p.name} stands under a final name, unlisted and broken ({e})")
    for name, sha in (previous or {}).items():
        if not (folder / name).is_file() or sha256_file(folder / name) != sha:
            problems.append(f"previous artifact {name} was lost or changed")
    return problems


def artifact_hashes(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in folder.iterdir() if p.suffix in ARTIFACT_SUFFIXES
            and not p.name.startswith(TMP_PREFIX)}


def leftover_temps(folder: Path) -> list[str]:
    return [p.name for p in folder.glob(TMP_PREFIX + "*")] if folder.is_dir() else []


DONE_LINE = "manifest.json in"  # the last line `slmkit quantize` prints, once every artifact is listed


def interrupt(model: Path, fmt: str, out: Path, sig: int, delay_s: float) -> dict:
    """Start a quantize, send ``sig`` after ``delay_s``; returns its exit code, stderr's last line, whether it
    was still running when signalled (a quantize that had already finished tests nothing) and whether its
    work was already done then (it had printed its last line and was only exiting)."""
    # Ctrl-C's default disposition in the child: a parent started in the background by a non-interactive shell
    # ignores SIGINT, children inherit that, and Python then never raises KeyboardInterrupt (the quantize
    # would run to its end and exit 0, as one fresh-clone run launched with `sh -c '...' &` showed)
    with tempfile.TemporaryFile("w+") as stdout:
        p = subprocess.Popen(quantize_command(model, fmt, out), stdout=stdout, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"},
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        time.sleep(delay_s)
        running = p.poll() is None
        p.send_signal(sig)
        stdout.seek(0)
        done = DONE_LINE in stdout.read()  # read right after the signal: printed before it, or about to be
        _, err = p.communicate(timeout=120)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return {"returncode": p.returncode, "last_line": lines[-1] if lines else "", "traceback": "Traceback" in err,
            "running_when_signalled": running, "done_when_signalled": done}


def finished_anyway(r: dict) -> bool:
    """The signal reached a quantize whose work was done: a Ctrl-C that lands while the interpreter shuts down
    (about a second here) can no longer raise KeyboardInterrupt, so it exits 0, rightly, and tests nothing.
    A Ctrl-C swallowed while the work still ran would exit 0 without this."""
    return r["returncode"] == 0 and r["done_when_signalled"]


def interrupt_running(model: Path, fmt: str, out: Path, sig: int, delay_s: float, tries: int = 4) -> dict:
    """:func:`interrupt`, with the delay halved while the quantize finishes before the signal (this
    machine's speed drifts, so a delay measured once can outlast a later run) or as it lands."""
    for _ in range(tries):
        r = interrupt(model, fmt, out, sig, delay_s)
        if r["running_when_signalled"] and not finished_anyway(r):
            break
        delay_s /= 2
    return r


def disk_full(model: Path, fmt: str, out: Path, limit: int) -> dict:
    """Quantize with every file capped at ``limit`` bytes (writes past it fail with EFBIG, as on a full disk)."""
    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    p = subprocess.run(quantize_command(model, fmt, out), capture_output=True, text=True, preexec_fn=cap, timeout=300)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    return {"returncode": p.returncode, "last_line": lines[-1] if lines else "", "traceback": "Traceback" in p.stderr}


def timed_quantize(model: Path, fmt: str, out: Path) -> float:
    t = time.perf_counter()
    subprocess.run(quantize_command(model, fmt, out), check=True, capture_output=True)
    return time.perf_counter() - t


def campaign(model: Path, fmt: str, work: Path, kills: int) -> dict:
    out = work / f"out-{fmt}"
    duration = timed_quantize(model, fmt, out)
    previous = artifact_hashes(out)
    row = {"format": fmt, "quantize_s": round(duration, 2), "faults": 0, "lost_or_corrupt": 0,
           "leftover_temps_after_sigint": 0, "unclear_errors": 0, "sigint_ignored": 0, "problems": []}
    delays = [duration * (i + 0.5) / kills for i in range(kills)]
    for sig in (signal.SIGINT, signal.SIGKILL):
        for delay in delays:
            r = interrupt(model, fmt, out, sig, delay)
            problems = folder_problems(out, previous)
            row["faults"] += 1
            row["lost_or_corrupt"] += bool(problems)
            row["problems"] += [f"{sig.name} at {delay:.2f}s: {p}" for p in problems][:3]
            if sig == signal.SIGINT and r["returncode"] != 0:
                row["leftover_temps_after_sigint"] += len(leftover_temps(out))
                row["unclear_errors"] += r["traceback"]
            elif sig == signal.SIGINT and r["running_when_signalled"] and not finished_anyway(r):
                row["sigint_ignored"] += 1  # exit 0 although the work was still running
                row["problems"].append(f"SIGINT at {delay:.2f}s: ignored, the quantize ran to its end")
    sizes = sorted({p.stat().st_size for p in out.iterdir() if p.is_file()})
    for limit in [1000] + sizes[len(sizes) // 2:][:4]:
        fresh = work / f"full-{fmt}-{limit}"
        for folder, prev in ((out, previous), (fresh, {})):
            r = disk_full(model, fmt, folder, limit)
            problems = folder_problems(folder, prev)
            row["faults"] += 1
            row["lost_or_corrupt"] += bool(problems)
            row["problems"] += [f"disk full at {limit} B: {p}" for p in problems][:3]
            if r["returncode"] != 0:
                row["unclear_errors"] += r["traceback"] or not r["last_line"].startswith("error: could not write")
    return row


def main(argv: list[str] | None = None) -> int:
    from slmkit.synthetic import write_random_gpt2

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20, help="moments per signal and format")
    ap.add_argument("--formats", default="gguf,onnx")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="slmkit-faults-") as tmp:
        model = write_random_gpt2(Path(tmp) / "tiny", n_embd=64, n_layer=2, n_head=4)
        rows = [campaign(model, fmt, Path(tmp), args.kills) for fmt in args.formats.split(",")]
    print("| format | quantize s | faults injected | artifacts lost or corrupted | temp files left after SIGINT | "
          "errors without a one-line message | Ctrl-C ignored while working |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['format']} | {r['quantize_s']} | {r['faults']} | {r['lost_or_corrupt']} | "
              f"{r['leftover_temps_after_sigint']} | {r['unclear_errors']} | {r['sigint_ignored']} |")
        for p in r["problems"][:10]:
            print("  " + p)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if any(r["lost_or_corrupt"] or r["unclear_errors"] or r["leftover_temps_after_sigint"] or r["sigint_ignored"]
                    for r in rows) else 0


if __name__ == "__main__":
    run_script(main)
