"""Faults: SIGINT / SIGKILL during quantize and disk-full writes lose nothing and leave nothing half-written;
many runtimes in one process; repeated load/close leaks neither memory nor file handles."""
from __future__ import annotations

import shutil
import signal
import threading
from pathlib import Path

import pytest

from devtools.faults import (artifact_hashes, disk_full, folder_problems, interrupt, interrupt_running, leftover_temps,
                             timed_quantize)


@pytest.fixture(scope="module", params=["gguf", "onnx"])
def quantized(request, tiny_demo, tmp_path_factory) -> tuple[str, Path, float, dict[str, str]]:
    """(format, a folder of complete artifacts, seconds a quantize took, their sha256)."""
    out = tmp_path_factory.mktemp(f"faults-{request.param}") / "out"
    seconds = timed_quantize(tiny_demo, request.param, out)
    return request.param, out, seconds, artifact_hashes(out)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killing_quantize_keeps_previous_artifacts_whole(quantized, tiny_demo, sig):
    """Each signal reaches a quantize still running: one that had already finished tests nothing, so the
    delay is halved until the signal lands while it runs, and the test fails if it never does."""
    fmt, out, seconds, previous = quantized
    for fraction in (0.3, 0.5, 0.7):
        r = interrupt_running(tiny_demo, fmt, out, sig, seconds * fraction)
        assert r["running_when_signalled"] and r["returncode"] != 0, (fraction, r)  # it was interrupted
        assert folder_problems(out, previous) == [], (fraction, r)
        if sig == signal.SIGINT:  # Ctrl-C: one line, temporary files cleaned up
            assert not r["traceback"] and (r["returncode"] != 130 or r["last_line"] == "interrupted"), r
            assert leftover_temps(out) == []


def test_killed_first_quantize_leaves_no_partial_artifact(quantized, tiny_demo, tmp_path):
    fmt, _, seconds, _ = quantized
    for fraction in (0.4, 0.8):
        out = tmp_path / f"fresh-{fraction}"
        interrupt(tiny_demo, fmt, out, signal.SIGKILL, seconds * fraction)
        assert folder_problems(out) == []


def test_disk_full_is_one_clear_line_and_loses_nothing(quantized, tiny_demo, tmp_path):
    fmt, out, _, previous = quantized
    sizes = sorted(p.stat().st_size for p in out.iterdir() if p.is_file())
    for limit in (1000, sizes[len(sizes) // 2], sizes[-1] - 1):
        for folder, prev in ((out, previous), (tmp_path / f"new-{limit}", {})):
            r = disk_full(tiny_demo, fmt, folder, limit)
            assert r["returncode"] == 1 and r["last_line"].startswith("error: could not write") and not r["traceback"], r
            assert folder_problems(folder, prev) == []
    assert artifact_hashes(out) == previous



CAPPED_WRITES = """
import resource, signal, sys
from pathlib import Path
from slmkit.converters.gguf_writer import write_gguf
from slmkit.errors import SlmkitError
from slmkit.model_folder import open_model_folder

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
folder, out = open_model_folder(Path(sys.argv[1])), Path(sys.argv[2])
for cap in map(int, sys.argv[3:]):
    resource.setrlimit(resource.RLIMIT_FSIZE, (cap, resource.RLIM_INFINITY))
    try:
        write_gguf(folder, out / f"capped-{cap}.gguf")
        print(cap, "written")
    except SlmkitError as e:
        print(cap, str(e).split(":")[0])
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
"""


def test_gguf_writer_never_leaves_a_short_file_on_a_full_disk(tiny_demo, tmp_path):
    """numpy's tofile drops a failed flush silently; every cap across the file must still be an error."""
    import subprocess
    import sys

    from slmkit.converters.gguf_writer import write_gguf
    from slmkit.model_folder import open_model_folder

    size = write_gguf(open_model_folder(tiny_demo), tmp_path / "whole.gguf").stat().st_size
    caps = sorted({1000, *range(size // 50, size, size // 50), size - 1})
    out = tmp_path / "capped"
    r = subprocess.run([sys.executable, "-c", CAPPED_WRITES, str(tiny_demo), str(out), *map(str, caps)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    results = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert results == {str(c): "could not write " + str(out / f"capped-{c}.gguf") for c in caps}
    assert list(out.iterdir()) == []

QUANTIZE_LOOP = """
import sys, time
from pathlib import Path
from slmkit.converters.gguf_quantize import quantize_gguf
from slmkit.converters.gguf_writer import write_gguf
from slmkit.model_folder import open_model_folder

src = write_gguf(open_model_folder(Path(sys.argv[1])), Path(sys.argv[2]) / "src.gguf")
print("ready", flush=True)
start = time.monotonic()
while time.monotonic() - start < 20:
    quantize_gguf(src, Path(sys.argv[2]) / "q.gguf", "q4_k_m", threads=1)
print("ran to the end", flush=True)
"""


def test_ctrl_c_inside_llama_quantize_is_not_lost(tiny_demo, tmp_path):
    """llama.cpp calls back into Python to log while it quantizes; a KeyboardInterrupt raised inside that ctypes
    callback used to be swallowed, so Ctrl-C was lost and the quantize ran on. The loop spends nearly all its
    time inside llama_model_quantize, so the signal lands there."""
    import subprocess
    import sys
    import time

    p = subprocess.Popen([sys.executable, "-c", QUANTIZE_LOOP, str(tiny_demo), str(tmp_path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert "ran to the end" not in out and "Exception ignored" not in err
    assert p.returncode == -signal.SIGINT and err.rstrip().endswith("KeyboardInterrupt"), err[-500:]
    assert leftover_temps(tmp_path) == []  # the interrupted file's temp is gone too


@pytest.fixture(scope="module")
def tiny_artifacts(tiny_demo, tmp_path_factory) -> dict[str, Path]:
    from tests.conftest import quantize_ok

    out = tmp_path_factory.mktemp("leaks")
    quantize_ok(tiny_demo, out, "--format", "gguf", "--quant", "q8_0,q4_0")
    quantize_ok(tiny_demo, out, "--format", "onnx", "--quant", "int8,int4")
    return {p.name.rsplit("-", 1)[-1]: p for p in out.iterdir() if p.suffix in (".gguf", ".onnx")}


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("kind", ["Q8_0.gguf", "int8.onnx"])
def test_repeated_load_close_leaks_no_memory_or_file_handles(tiny_artifacts, kind):
    from devtools.leaks import measure

    r = measure(str(tiny_artifacts[kind]), 200, 20)
    assert r["fd_growth"] == 0, r
    assert r["trimmed_growth_mb"] < 8, r  # memory still in use; the allocator's reusable cache excluded


def test_many_runtimes_in_one_process_from_many_threads(tiny_artifacts):
    from slmkit.loader import load

    prompt = "<|task:search|> <|len:short|> vintage lamp"
    runtimes = [load(p, threads=1) for p in tiny_artifacts.values() for _ in range(2)]  # 8 runtimes
    try:
        expected = [rt.generate(prompt, max_new_tokens=12) for rt in runtimes]
        results: dict[tuple[int, int], str] = {}
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                for k in range(4):
                    i = (t + k) % len(runtimes)
                    results[(t, k)] = (i, runtimes[i].generate(prompt, max_new_tokens=12))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors
        assert len(results) == 64 and all(out == expected[i] for i, out in results.values())
    finally:
        for rt in runtimes:
            rt.close()


def test_bench_verifies_checksums_unless_told_not_to(tiny_artifacts, tmp_path):
    """Integrity: a modified artifact is named; --no-verify skips the check (slmkit.load is tested in test_load)."""
    from click.testing import CliRunner

    from slmkit.cli import cli

    folder = tmp_path / "art"
    shutil.copytree(next(iter(tiny_artifacts.values())).parent, folder)
    target = folder / tiny_artifacts["int8.onnx"].name
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    target.write_bytes(bytes(data))
    r = CliRunner().invoke(cli, ["bench", str(folder), "--quant", "int8", "--quick", "--scorer", "none"])
    assert r.exit_code == 1 and f"{target}: sha256 does not match its manifest" in r.output


def test_an_artifact_that_fails_its_checks_never_stands_under_its_name(tiny_demo, tmp_path, monkeypatch):
    """ONNX: int8 passes and is recorded; int4 fails its cache check and is removed. GGUF: a kept f16 whose
    fidelity check fails is removed."""
    from click.testing import CliRunner

    import slmkit.converters.gguf_pipeline as gp
    import slmkit.converters.onnx_pipeline as op
    from slmkit.cli import cli

    real = op.cache_consistency
    monkeypatch.setattr(op, "cache_consistency", lambda rt, texts, quantized=False: (
        {**real(rt, texts, quantized), "passed": "int4" not in rt.info["file"], "max_abs_diff": 9.0}))
    r = CliRunner().invoke(cli, ["quantize", str(tiny_demo), "--format", "onnx", "--quant", "int8,int4",
                                 "--out", str(tmp_path / "onnx"), "--threads", "1"])
    assert r.exit_code == 1 and "int4.onnx: decoding with the KV cache differs" in r.output
    assert sorted(p.name for p in (tmp_path / "onnx").glob("*.onnx")) == [f"{tiny_demo.name}-int8.onnx"]
    assert folder_problems(tmp_path / "onnx") == []

    monkeypatch.setattr(gp, "fidelity", lambda rt, ref, texts: {"passed": False, "max_abs_diff": 9.0, "limit": 0.1})
    r = CliRunner().invoke(cli, ["quantize", str(tiny_demo), "--quant", "f16,q8_0", "--out", str(tmp_path / "gguf"),
                                 "--threads", "1"])
    assert r.exit_code == 1 and "logits differ from the fp16 reference" in r.output
    assert not list((tmp_path / "gguf").glob("*.gguf")) and folder_problems(tmp_path / "gguf") == []


@pytest.mark.parametrize("entry", ["run_script", "console"])
def test_a_ctrl_c_that_python_swallows_still_ends_interrupted(entry):
    """A KeyboardInterrupt raised inside an object's __del__ is swallowed by Python ("Exception ignored in");
    a quantize whose Ctrl-C landed in the regex package's __del__ ran on and exited 0. The entry points remember
    the signal: the command ends "interrupted" with 130 all the same."""
    import subprocess
    import sys

    body = ("import os, signal, gc\n"
            "class Finalized:\n"
            "    def __del__(self):\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "def main():\n"
            "    Finalized(); gc.collect()\n"
            "    return 0\n")
    if entry == "run_script":
        code = body + "from slmkit.errors import run_script\nrun_script(main)\n"
    else:  # the console script around a command that swallows the Ctrl-C and exits 0, as click does on success
        code = body + ("import slmkit.cli, slmkit.__main__\n"
                       "def fake():\n    main(); raise SystemExit(0)\n"
                       "slmkit.cli.main = fake\nslmkit.__main__.run()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.returncode == 130 and p.stderr.strip().splitlines()[-1] == "interrupted", (p.returncode, p.stderr)


def test_a_script_whose_main_raises_keyboardinterrupt_says_interrupted():
    """A KeyboardInterrupt that no handler of ours recorded (raised directly, or with SIGINT ignored by the shell
    that started the script) still ends as one "interrupted" line and 130, not a silent 130."""
    import subprocess
    import sys

    code = "from slmkit.errors import run_script\ndef main():\n    raise KeyboardInterrupt\nrun_script(main)\n"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 130 and p.stderr.strip() == "interrupted", (p.returncode, p.stderr)
