"""slmkit.load, device profiles and `slmkit generate`."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from slmkit import load
from slmkit.cli import cli
from slmkit.errors import SlmkitError
from slmkit.profiles import get_profile, load_profiles
from tests.conftest import quantize_ok


@pytest.fixture(scope="module")
def artifacts(tiny_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("art")
    quantize_ok(tiny_demo, out, "--quant", "q8_0")
    quantize_ok(tiny_demo, out, "--format", "onnx", "--quant", "int8,int4")
    return out


def test_profiles_are_data_and_extendable(tmp_path, monkeypatch):
    assert {"cpu", "mobile"} <= set(load_profiles())
    mobile = get_profile("mobile")
    assert mobile.max_context == 512 and mobile.batch == 1 and mobile.thread_count() <= 4
    extra = tmp_path / "p.json"
    extra.write_text(json.dumps({"tablet": {"threads": 1, "max_context": 64, "prefer": ["int8"]},
                                 "mobile": {"memory_budget_mb": 1}}))
    monkeypatch.setenv("SLMKIT_PROFILES", str(extra))
    assert get_profile("tablet").max_context == 64 and get_profile("mobile").memory_budget_mb == 1
    extra.write_text(json.dumps({"bad": {"cores": 3}}))
    with pytest.raises(SlmkitError, match="unknown field 'cores'"):
        load_profiles()


@pytest.mark.parametrize("fields, msg", [
    ({"threads": "all"}, "threads must be \"physical\" or a whole number"),  # was a ValueError traceback
    ({"threads": 0}, "threads must be"),
    ({"max_context": -5}, "max_context must be null or a whole number"),
    ({"batch": 1.5}, "batch must be a whole number"),
    ({"memory_budget_mb": "lots"}, "memory_budget_mb must be null or a positive number"),
    ({"prefer": "q8_0"}, "prefer must be a list"),
])
def test_a_profile_value_that_cannot_work_is_one_line(tmp_path, monkeypatch, fields, msg):
    extra = tmp_path / "p.json"
    extra.write_text(json.dumps({"weird": fields}))
    monkeypatch.setenv("SLMKIT_PROFILES", str(extra))
    with pytest.raises(SlmkitError, match=f"profile 'weird': {msg}"):
        load_profiles()
    r = CliRunner().invoke(cli, ["generate", "--device", "weird", "x"])
    assert r.exit_code == 1 and "profile 'weird'" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("edit, msg", [
    (lambda e: e.pop("quant"), "lacks 'quant'"),          # was a KeyError traceback
    (lambda e: e.pop("bytes"), "lacks 'bytes'"),
    (lambda e: e.update(sha256=7), "'sha256' of the wrong type"),
    (lambda e: e.update(bytes="12"), "'bytes' of the wrong type"),
])
def test_a_hand_edited_manifest_is_one_line(artifacts, tmp_path, edit, msg):
    import shutil

    copy = tmp_path / "a"
    shutil.copytree(artifacts, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    edit(next(iter(manifest["artifacts"].values())))
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SlmkitError, match=msg):
        load(copy)
    r = CliRunner().invoke(cli, ["generate", str(copy), "x"])
    assert r.exit_code == 1 and msg.split("'")[1] in r.output and "Traceback" not in r.output
    (copy / "manifest.json").write_text(json.dumps({"schema": "slmkit.manifest/1", "artifacts": {"x.gguf": 5}}))
    with pytest.raises(SlmkitError, match="'x.gguf' is not an entry"):
        load(copy)


def test_load_picks_by_profile_and_enforces_it(artifacts, tmp_path, monkeypatch):
    with load(artifacts) as rt:
        assert rt.info["format"] == "gguf"
        assert rt.info["file"].endswith("Q8_0.gguf") and rt.info["sha256_verified"] and rt.info["profile"] == "cpu"
    with load(artifacts, device="mobile") as rt:
        assert rt.info["file"].endswith("int4.onnx") and rt.n_ctx <= 512 and rt.info["threads"] <= 4
    extra = tmp_path / "p.json"
    extra.write_text(json.dumps({"tiny": {"threads": 1, "max_context": 32, "memory_budget_mb": 1, "prefer": ["int8"]}}))
    with load(artifacts, device="tiny", profiles_file=extra) as rt:
        assert rt.info["file"].endswith("int8.onnx") and rt.n_ctx == 32 and rt.info["threads"] == 1
        assert "exceeds the tiny budget" in rt.info["warnings"][0]


def test_load_verifies_sha256(artifacts, tmp_path):
    import shutil

    copy = tmp_path / "a"
    shutil.copytree(artifacts, copy)
    victim = next(copy.glob("*-int8.onnx"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the weights: loads, but is not the file the manifest describes
    victim.write_bytes(bytes(data))
    with pytest.raises(SlmkitError, match="sha256 does not match its manifest"):
        load(victim)
    with load(victim, verify=False) as rt:
        assert not rt.info["sha256_verified"]
    data[-1] ^= 0xFF  # the metadata at the end of the file
    victim.write_bytes(bytes(data))
    with pytest.raises(SlmkitError, match="corrupt model metadata|could not load"):
        load(victim, verify=False)


def test_generate_command_errors(artifacts, tmp_path):
    r = CliRunner().invoke(cli, ["generate", str(artifacts)])
    assert r.exit_code == 1 and "missing INTENT" in r.output
    r = CliRunner().invoke(cli, ["generate", str(tmp_path), "x"])
    assert r.exit_code == 1 and "neither an artifact folder" in r.output
    r = CliRunner().invoke(cli, ["generate", str(tmp_path / "no.gguf"), "x"])
    assert r.exit_code == 1 and "no such GGUF file" in r.output


@pytest.mark.parametrize("kind", ["Q8_0.gguf", "int4.onnx", "model folder"])
def test_generate_from_each_kind(artifacts, tiny_demo, kind):
    target = str(tiny_demo) if kind == "model folder" else str(next(artifacts.glob(f"*-{kind}")))
    r = CliRunner().invoke(cli, ["generate", target, "cozy cabin wallpaper", "--max-new-tokens", "5", "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)["runtime"]
    assert info["quant"] == {"Q8_0.gguf": "q8_0", "int4.onnx": "int4", "model folder": "fp16"}[kind]
    assert info["profile"] == "cpu" and info["backend"] in ("llama.cpp", "onnxruntime", "transformers")


def test_generate_command(artifacts):
    r = CliRunner().invoke(cli, ["generate", str(artifacts), "cozy cabin wallpaper", "--task", "search", "-n", "3",
                                 "--max-new-tokens", "8", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert len(data["outputs"]) == 3 and data["prompt"].startswith("<|task:search|><|len:medium|><|rel:high|>")
    assert data["runtime"]["profile"] == "cpu"
    s = CliRunner().invoke(cli, ["generate", str(artifacts), "neon poster", "--stream", "--max-new-tokens", "6",
                                 "--device", "mobile"])
    assert s.exit_code == 0, s.output
    bad = CliRunner().invoke(cli, ["generate", str(artifacts), "x", "--device", "tablet"])
    assert bad.exit_code == 1 and "unknown device profile 'tablet'; valid: cpu, mobile" in bad.output
    bad = CliRunner().invoke(cli, ["generate", str(artifacts), "x", "--task", "poem"])
    assert bad.exit_code == 2 and "'poem' is not one of" in bad.output


def test_loading_artifacts_never_imports_torch(artifacts):
    code = (f"import sys, slmkit; rt = slmkit.load({str(artifacts)!r}); rt.generate('<|task:t2i|>x<|out|>', "
            f"max_new_tokens=3); rt2 = slmkit.load({str(artifacts)!r}, device='mobile'); rt2.score('a b'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_n_candidates_are_seeded(artifacts):
    with load(artifacts) as rt:
        a = rt.generate("<|task:t2i|>x<|out|>", n=3, temperature=1.0, max_new_tokens=6, seed=1)
        assert isinstance(a, list) and len(a) == 3
        assert a == rt.generate("<|task:t2i|>x<|out|>", n=3, temperature=1.0, max_new_tokens=6, seed=1)
        assert a[0] == rt.generate("<|task:t2i|>x<|out|>", temperature=1.0, max_new_tokens=6, seed=1)
        with pytest.raises(SlmkitError, match="n must be a whole number between 1 and 64"):
            rt.generate("x", n=0)


@pytest.mark.parametrize("kind", ["int4.onnx", "Q8_0.gguf"])
def test_batched_candidates_equal_sequential_ones(artifacts, kind):
    with load(next(artifacts.glob(f"*-{kind}"))) as rt:
        assert rt.batched
        p = "<|task:t2i|><|len:long|><|rel:high|>cozy cabin wallpaper<|out|>"
        batched = rt.generate(p, n=4, temperature=1.0, seed=7, max_new_tokens=12, stop=["zzz"])
        rt.batched = False
        sequential = rt.generate(p, n=4, temperature=1.0, seed=7, max_new_tokens=12, stop=["zzz"])
        assert len(batched) == 4 and len(set(batched)) > 1
        # batch shapes change the arithmetic (int8 activations are quantized over the whole batch):
        # allow rare near-tie flips
        assert sum(a == b for a, b in zip(batched, sequential)) >= 3
        with pytest.raises(SlmkitError, match="exceeds the context"):
            rt.generate(p, n=2, max_new_tokens=rt.n_ctx - 5)


def test_memory_and_file_reservation_work_without_unix_only_modules(tmp_path, monkeypatch):
    """Windows has no ``resource`` module and macOS no ``os.posix_fallocate``: simulated here."""
    import builtins
    import importlib
    import os

    import slmkit.memory as memory
    from slmkit.benchmarks.scenario import reserve

    pytest.importorskip("psutil")  # imported before `resource` disappears (psutil uses it on Linux)

    real_import = builtins.__import__

    def no_resource(name, *args, **kwargs):
        if name == "resource":
            raise ImportError("No module named 'resource'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_resource)
    try:
        fallback = importlib.reload(memory)
        assert fallback.resource is None
        assert fallback._maxrss_mb() > 10  # through psutil
        monkeypatch.setattr(fallback, "_status_mb", lambda field: None)  # not Linux either
        assert fallback.peak_rss_mb() > 10 and fallback.current_rss_mb() > 10
    finally:
        monkeypatch.setattr(builtins, "__import__", real_import)
        importlib.reload(memory)
    monkeypatch.delattr(os, "posix_fallocate")
    path = tmp_path / "reserved"
    with open(path, "wb") as f:
        f.truncate(10_000)
        reserve(f.fileno(), 10_000)
    assert path.stat().st_size == 10_000 and path.read_bytes() == b"\0" * 10_000
