"""GGUF: write, check, quantize, run; odd shapes, fallbacks and clear errors."""
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from slmkit.cli import cli
from slmkit.converters.gguf_writer import write_gguf
from slmkit.errors import SlmkitError
from slmkit.files import sha256_file
from slmkit.model_folder import open_model_folder
from slmkit.prompts import build_prompt
from slmkit.runtimes.llamacpp import LlamaCppRuntime, new_llama, repack_weights
from slmkit.runtimes.reference import ReferenceRuntime
from slmkit.runtimes.sampling import Sampling
from slmkit.synthetic import write_random_gpt2
from tests.conftest import quantize_ok


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Widths that fit K-quant blocks (256), the demo tokenizer with its control tokens."""
    return write_random_gpt2(tmp_path_factory.mktemp("small"), n_embd=256, n_layer=2, n_head=4)


@pytest.fixture(scope="module")
def quantized(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("q")
    return out, quantize_ok(small, out, "--quant", "f16,q8_0,q4_k_m,q4_0")


def test_quantize_writes_artifacts_manifest_and_tokenizer(small, quantized):
    out, log = quantized
    manifest = json.loads((out / "manifest.json").read_text())
    names = sorted(manifest["artifacts"])
    assert names == sorted(f"{small.name}-{q}.gguf" for q in ("F16", "Q8_0", "Q4_K_M", "Q4_0"))
    for name, entry in manifest["artifacts"].items():
        assert entry["sha256"] == sha256_file(out / name) and entry["bytes"] == (out / name).stat().st_size
        assert entry["format"] == "gguf" and not entry["fallbacks"]
    q4 = manifest["artifacts"][f"{small.name}-Q4_K_M.gguf"]
    assert q4["embedding_type"] in ("Q6_K", "Q8_0") and q4["tensor_types"].get("Q4_K")
    assert manifest["artifacts"][f"{small.name}-Q8_0.gguf"]["embedding_type"] == "Q8_0"
    for q in ("Q8_0", "Q4_K_M", "Q4_0"):  # each quantized type's own check, in its entry
        assert manifest["artifacts"][f"{small.name}-{q}.gguf"]["checks"]["finite_logits"] == {
            "texts": 4, "bad_texts": 0, "passed": True}
    assert manifest["source"]["sha256"] == sha256_file(small / "model.safetensors")
    checks = manifest["checks"]["gguf"]
    assert checks["tokenizer_parity"]["passed"] and checks["tokenizer_parity"]["texts"] >= 27
    assert checks["fidelity_f16"]["passed"] and checks["fidelity_f16"]["max_abs_diff"] < 0.01
    assert (out / "tokenizer.json").is_file() and not list(out.glob(".slmkit-*"))
    assert "checks passed" in log


def test_f16_logits_match_reference_and_quants_stay_close(small, quantized):
    out, _ = quantized
    ref = ReferenceRuntime(small, threads=1)
    text = build_prompt("cozy cabin wallpaper") + "a cozy cabin wallpaper, pine forest"
    want = ref.score(text)
    for q, tol in (("F16", 0.01), ("Q8_0", 0.1), ("Q4_K_M", 1.0)):
        with LlamaCppRuntime(out / f"{small.name}-{q}.gguf", threads=1) as rt:
            assert rt.tokenize(text) == rt.llama_tokenize(text) == ref.tokenize(text)
            assert np.abs(rt.score(text) - want).max() < tol, q


def test_generate_stream_and_seed_through_runtime_and_llama_cpp_directly(small, quantized):
    """Greedy tokens checked against the sequence re-scored from scratch and against llama.cpp's own loop.
    Caught: a decode loop that fed the previous token twice."""
    import llama_cpp

    out, _ = quantized
    path = out / f"{small.name}-Q4_K_M.gguf"
    with LlamaCppRuntime(path, threads=1) as rt:
        p = build_prompt("holiday sale flyer", "search")
        # greedy, checked against the whole sequence re-scored from scratch at every step: each token is
        # the argmax there, up to a near-tie (llama.cpp's prefill and single-token kernels round apart)
        ids, out = rt.tokenize(p), list(rt._token_stream(p, 12, Sampling(), seed=0))
        assert len(out) >= 8 and rt.detokenize(out) == rt.generate(p, max_new_tokens=12)
        for k, tok in enumerate(out):
            logits = rt.score(ids + out[:k])[-1]
            assert logits[tok] >= logits.max() - 0.05, (k, tok, int(logits.argmax()))
        a = rt.generate(p, max_new_tokens=12, temperature=0.9, seed=4)
        assert a == rt.generate(p, max_new_tokens=12, temperature=0.9, seed=4)
        assert "".join(rt.stream(p, max_new_tokens=12, temperature=0.9, seed=4)) == a
        assert rt.info["format"] == "gguf" and rt.info["sha256"] == sha256_file(path)
        greedy = rt.generate(p, max_new_tokens=4)
    # llama.cpp's own decode loop on the same file gives the same greedy tokens
    llm = new_llama(model_path=str(path), n_ctx=64, n_threads=1, verbose=False)
    assert llm(p, max_tokens=4, temperature=0)["choices"][0]["text"] == greedy
    llm.close()


class _System:
    def __init__(self, info: bytes):
        self.info = info

    def llama_print_system_info(self) -> bytes:
        return self.info


def test_weights_are_not_repacked_for_amx(monkeypatch):
    """llama.cpp's AMX backend segfaults on these models (seen on a Xeon with AMX_INT8): no extra buffer
    types there, or when SLMKIT_LLAMA_REPACK=0; AVX2 / arm64 repacking stays on elsewhere."""
    monkeypatch.delenv("SLMKIT_LLAMA_REPACK", raising=False)
    assert repack_weights(_System(b"CPU : AVX2 = 1 | REPACK = 1 | "))
    assert not repack_weights(_System(b"CPU : AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 | "))
    monkeypatch.setenv("SLMKIT_LLAMA_REPACK", "0")
    assert not repack_weights(_System(b"CPU : AVX2 = 1 | REPACK = 1 | "))


def test_unrepacked_weights_give_the_same_text(small, quantized, monkeypatch):
    """With repacking off, every quantized type loads, runs and says so; its greedy text is the one llama.cpp's
    default gives where that default can run (not on an AMX CPU, where it would segfault)."""
    import llama_cpp

    out, _ = quantized
    p = build_prompt("holiday sale flyer", "search")
    for name in ("Q8_0", "Q4_K_M", "Q4_0"):
        path = out / f"{small.name}-{name}.gguf"
        monkeypatch.setenv("SLMKIT_LLAMA_REPACK", "0")
        with LlamaCppRuntime(path, threads=1) as rt:
            plain = rt.generate(p, max_new_tokens=8)
            assert rt.info["repacked_weights"] is False and len(rt.tokenize(plain)) >= 4, name
        monkeypatch.delenv("SLMKIT_LLAMA_REPACK")
        if repack_weights(llama_cpp):
            with LlamaCppRuntime(path, threads=1) as rt:
                assert rt.info["repacked_weights"] is True and rt.generate(p, max_new_tokens=8) == plain, name


def test_standalone_gguf_decodes_with_its_own_vocabulary(small, quantized, tmp_path):
    out, _ = quantized
    lone = tmp_path / "lone.gguf"
    shutil.copyfile(out / f"{small.name}-F16.gguf", lone)
    text = build_prompt("neon space poster") + "tags: space, neon"
    with LlamaCppRuntime(lone, threads=1) as rt, LlamaCppRuntime(out / f"{small.name}-F16.gguf", threads=1) as beside:
        assert rt.tokenizer.kind == "gguf" and beside.tokenizer.kind == "tokenizer.json"
        assert rt.tokenize(text) == beside.tokenize(text)
        ids = rt.tokenize(text)
        assert rt.detokenize(ids) == text


def test_context_is_never_passed(small, quantized):
    out, _ = quantized
    with LlamaCppRuntime(out / f"{small.name}-Q8_0.gguf", threads=1, n_ctx=32) as rt:
        assert rt.n_ctx == 32
        with pytest.raises(SlmkitError, match="exceeds the context of 32"):
            rt.generate(" a" * 30, max_new_tokens=8)
        rt._reset()
        rt._eval([1] * 30)
        with pytest.raises(SlmkitError, match="exceeds the context"):
            rt._eval([1] * 5)
    with LlamaCppRuntime(out / f"{small.name}-Q8_0.gguf", threads=1, n_ctx=10**6) as rt:
        assert rt.n_ctx == 256  # capped at the model's n_positions


def test_odd_shape_reports_k_quant_fallbacks(odd_gpt2, tmp_path):
    output = quantize_ok(odd_gpt2, tmp_path, "--quant", "q4_k_m,q4_0")
    m = json.loads((tmp_path / "manifest.json").read_text())
    k = m["artifacts"][f"{odd_gpt2.name}-Q4_K_M.gguf"]
    assert k["fallbacks"] and "blk.0.attn_qkv.weight" in k["fallbacks"]
    assert "fell back from q4_k_m" in output
    q40 = m["artifacts"][f"{odd_gpt2.name}-Q4_0.gguf"]
    assert "blk.0.ffn_down.weight" in q40["fallbacks"]  # rows of n_inner 1000 are not a multiple of 32
    assert "blk.0.attn_qkv.weight" not in q40["fallbacks"]  # 320 is
    assert m["checks"]["gguf"]["tokenizer_parity"]["passed"]
    with LlamaCppRuntime(tmp_path / f"{odd_gpt2.name}-Q4_K_M.gguf", threads=1) as rt:
        assert rt.tokenize("<|task:t2i|>hello<|out|>") == [50257, 31373, 50258]
        assert isinstance(rt.generate("<|task:t2i|>hello<|out|>", max_new_tokens=3), str)


def test_embedding_type_override(small, tmp_path):
    quantize_ok(small, tmp_path, "--quant", "q4_0", "--embedding-type", "q8_0")
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["artifacts"][f"{small.name}-Q4_0.gguf"]["embedding_type"] == "Q8_0"


@pytest.mark.parametrize("args,msg", [
    (["--quant", "q3_xx"], "unknown type 'q3_xx'; gguf: f32, f16, q8_0"),
    (["--quant", ""], "no type given"),
    (["--quant", "int8"], "int8: not a type of --format gguf"),
    (["--format", "gguf,onnx", "--quant", "q8_0"], "--quant q8_0 names no onnx type"),
    (["--format", "tflite"], "unknown format 'tflite'; valid: gguf, onnx"),
    (["--block-size", "64", "--head-bits", "4"], "--block-size, --head-bits only apply to --format onnx"),
    (["--format", "gguf,onnx", "--embedding-type", "int9"], "unknown embedding type 'int9'; gguf: q8_0, q6_k, q5_k, q4_k, f16; onnx:"),
])
def test_bad_quant_option(small, tmp_path, args, msg):
    r = CliRunner().invoke(cli, ["quantize", str(small), "--out", str(tmp_path), *args])
    assert r.exit_code == 1 and msg in r.output and "Traceback" not in r.output
    assert not (tmp_path / "manifest.json").exists()  # refused before any work


def test_one_quantize_run_writes_both_formats(small, tmp_path):
    """--format takes several formats (repeated or comma-separated): it used to keep only the last one."""
    r = CliRunner().invoke(cli, ["quantize", str(small), "--out", str(tmp_path), "--format", "gguf", "--format", "onnx",
                                 "--quant", "q8_0,int8", "--threads", "1"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert sorted(m["artifacts"]) == [f"{small.name}-Q8_0.gguf", f"{small.name}-int8.onnx"]
    assert set(m["checks"]) == {"gguf", "onnx"}


def test_failed_quantize_leaves_no_partial_file(small, tmp_path, monkeypatch):
    import llama_cpp

    monkeypatch.setattr(llama_cpp, "llama_model_quantize", lambda *a: 1)
    r = CliRunner().invoke(cli, ["quantize", str(small), "--quant", "q8_0", "--out", str(tmp_path)])
    assert r.exit_code == 1 and "failed to quantize" in r.output
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".slmkit-*"))



@pytest.mark.parametrize("fmt", ["gguf", "onnx"])
def test_a_tokenizer_that_transformers_reads_differently_is_refused(small, tmp_path, monkeypatch, fmt):
    """The fp16 reference is transformers: where its tokenizer would split a control token that slmkit
    keeps whole, nothing is written."""
    from slmkit.converters import checks

    real = checks.transformers_encoder

    def splitting(folder):
        encode = real(folder)
        return lambda text: encode(text.replace("<|out|>", "<|ou t|>"))

    monkeypatch.setattr(f"slmkit.converters.{fmt}_pipeline.transformers_encoder", splitting)
    r = CliRunner().invoke(cli, ["quantize", str(small), "--format", fmt, "--out", str(tmp_path)])
    assert r.exit_code == 1 and "transformers' tokenization differs from slmkit's on" in r.output, r.output
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".gguf", ".onnx") or p.name.startswith(".slmkit")]

def test_bad_gguf_files_fail_cleanly(small, quantized, tmp_path):
    out, _ = quantized
    good = (out / f"{small.name}-Q8_0.gguf").read_bytes()
    cases = {"not-gguf": b"PK\x03\x04" + good[4:], "truncated": good[: len(good) // 2], "tiny": good[:10],
             "version": good[:4] + (99).to_bytes(4, "little") + good[8:]}
    for name, data in cases.items():
        p = tmp_path / f"{name}.gguf"
        p.write_bytes(data)
        with pytest.raises(SlmkitError) as e:
            LlamaCppRuntime(p, threads=1)
        assert str(p) in str(e.value), name



@pytest.mark.parametrize("extra, msg", [
    ({"eps": -0.5}, "layer_norm_epsilon = -0.5"),  # llama.cpp: GGML_ASSERT(eps >= 0.0f), an abort
    ({"eps": float("nan")}, "layer_norm_epsilon = nan"),
    ({"gpt2.expert_count": 8}, "keys a GPT-2 does not: gpt2.expert_count"),
    ({"gpt2.attention.head_count_kv": 3}, "head_count_kv = 3"),
    ({"gpt2.vocab_size": 7}, "vocab_size = 7, the embedding has"),
])
def test_gguf_hyperparameters_llama_cpp_would_abort_on_are_refused(small, tmp_path, monkeypatch, extra, msg):
    import gguf

    add_eps = gguf.GGUFWriter.add_layer_norm_eps

    def edited(self, value):
        add_eps(self, extra.get("eps", value))
        for key, v in extra.items():
            if key != "eps":
                self.add_uint32(key, v)

    monkeypatch.setattr(gguf.GGUFWriter, "add_layer_norm_eps", edited)
    path = write_gguf(open_model_folder(small), tmp_path / "edited.gguf")
    with pytest.raises(SlmkitError, match=msg):
        LlamaCppRuntime(path, threads=1)

@pytest.mark.parametrize("value", ["2", 2.0, True])
def test_a_special_token_id_that_is_not_an_integer_is_one_line(small, tmp_path, monkeypatch, value):
    """A GGUF whose eos_token_id is a string (or float / bool): was a ValueError traceback."""
    import gguf

    def edited(self, _id):
        key = gguf.Keys.Tokenizer.EOS_ID
        {str: self.add_string, float: self.add_float32, bool: self.add_bool}[type(value)](key, value)

    monkeypatch.setattr(gguf.GGUFWriter, "add_eos_token_id", edited)
    path = write_gguf(open_model_folder(small), tmp_path / "edited.gguf")
    with pytest.raises(SlmkitError, match="eos token id .* is not an integer"):
        LlamaCppRuntime(path, threads=1)


def test_other_architecture_gguf_is_refused(tmp_path):
    import gguf

    p = tmp_path / "llama.gguf"
    w = gguf.GGUFWriter(p, "llama")
    w.add_tensor("token_embd.weight", np.zeros((4, 32), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(SlmkitError, match="unsupported architecture 'llama'"):
        LlamaCppRuntime(p)


def test_square_conv1d_weights_are_transposed(small, tmp_path):
    import gguf

    folder = open_model_folder(small)
    path = write_gguf(folder, tmp_path / "x.gguf", "f32")
    t = {x.name: x for x in gguf.GGUFReader(path).tensors}["blk.0.attn_output.weight"]
    from slmkit.weights import load_weights

    hf = load_weights(folder)["h.0.attn.c_proj.weight"]
    assert np.array_equal(np.asarray(t.data).reshape(256, 256), hf.T.astype(np.float32))


def test_finite_logits_check_fails_on_nan():
    from slmkit.converters.checks import finite_logits, require

    class Broken:
        n_ctx = 8

        def tokenize(self, text):
            return [1, 2, 3]

        def score(self, ids):
            out = np.zeros((len(ids), 5), np.float32)
            out[1, 2] = np.nan
            return out

    result = finite_logits(Broken(), ["a", "b"])
    assert result == {"texts": 2, "bad_texts": 2, "passed": False}
    with pytest.raises(SlmkitError, match="x.gguf: its logits are not finite"):
        require("finite_logits", result, "x.gguf")


def test_a_ctrl_c_inside_llama_cpps_log_callback_is_not_lost(small, quantized):
    """llama.cpp logs through a Python callback (creating and freeing the contexts of n candidates, for one); a
    Ctrl-C that landed there was swallowed ("Exception ignored on calling ctypes callback function") and the
    work ran on. Here the callback sends the SIGINT itself, so it lands inside it every time: the call must
    still end in KeyboardInterrupt."""
    import ctypes
    import os
    import signal

    import llama_cpp
    from llama_cpp import _logger

    out, _ = quantized
    fired = []

    @llama_cpp.llama_log_callback
    def interrupting(level, text, user_data):
        if not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGINT)

    with LlamaCppRuntime(out / f"{small.name}-Q8_0.gguf", threads=1) as rt:
        prompt = build_prompt("holiday sale flyer")
        # Python's own Ctrl-C handler, as in a terminal (a run started in the background by a shell ignores SIGINT)
        before = signal.signal(signal.SIGINT, signal.default_int_handler)
        llama_cpp.llama_log_set(interrupting, ctypes.c_void_p(0))
        try:
            with pytest.raises(KeyboardInterrupt):
                rt.generate(prompt, n=2, max_new_tokens=4, temperature=0.8, seed=1)
        finally:
            llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
            signal.signal(signal.SIGINT, before)
        assert fired and len(rt.generate(prompt, n=2, max_new_tokens=4, temperature=0.8, seed=1)) == 2
