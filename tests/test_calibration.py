"""Calibrated quantization: importance matrices measured in the fp16 reference, llama.cpp's imatrix file format
both ways, the demo calibration split's disjointness, and every bad calibration input as one line."""
from __future__ import annotations


import numpy as np
import pytest
from click.testing import CliRunner

from slmkit.cli import cli
from slmkit.converters.calibration import MIN_TOKENS
from slmkit.demo.calibration import calibration_texts as demo_texts, evaluation_texts
from slmkit.converters.imatrix import ImportanceMatrix, compute_imatrix, read_imatrix, write_imatrix
from slmkit.errors import SlmkitError

pytest.importorskip("torch")

TEXTS = ["<|task:t2i|><|len:short|><|rel:high|> a red bicycle<|out|> a red bicycle, soft light<|endoftext|>",
         "a quiet harbor at dawn with small boats"]


def quantize(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["quantize", *args, "--threads", "2"])
    return r.exit_code, r.output


def test_importance_is_the_mean_square_of_each_matrix_input(tiny_demo):
    """Against a hand computation: the inputs of block 0's qkv matrix are ln_1 of the embeddings, the head's
    the final layer norm's output (recorded under token_embd.weight: the head is tied)."""
    import torch

    from slmkit.runtimes.reference import ReferenceRuntime

    with ReferenceRuntime(tiny_demo) as ref:
        m = compute_imatrix(ref, TEXTS, ["two texts"])
        model = ref._model
        qkv, head, n = 0.0, 0.0, 0
        with torch.inference_mode():
            for text in TEXTS:
                ids = torch.tensor([ref.tokenize(text)])
                h = model.transformer.wte(ids) + model.transformer.wpe(torch.arange(ids.shape[1])[None])
                x = model.transformer.h[0].ln_1(h)[0].double()
                qkv = qkv + (x * x).sum(0)
                out = model.transformer(ids).last_hidden_state[0].double()  # after ln_f
                head = head + (out * out).sum(0)
                n += ids.shape[1]
    assert m.counts["blk.0.attn_qkv.weight"] == n and m.counts["token_embd.weight"] == n and m.chunk_count == 2
    np.testing.assert_allclose(m.sums["blk.0.attn_qkv.weight"], qkv.numpy(), rtol=1e-6)
    np.testing.assert_allclose(m.sums["token_embd.weight"], head.numpy(), rtol=1e-6)
    assert sorted(m.sums) == sorted([f"blk.{i}.{t}.weight" for i in range(2)
                                     for t in ("attn_qkv", "attn_output", "ffn_up", "ffn_down")] + ["token_embd.weight"])
    assert m.sums["blk.0.ffn_down.weight"].shape == (4 * 64,)  # ffn_down's inputs are the 4x-wide hidden layer


def test_the_file_round_trips_and_anything_else_is_refused(tmp_path, tiny_demo):
    m = ImportanceMatrix({"blk.0.attn_qkv.weight": np.arange(64, dtype=np.float64)}, {"blk.0.attn_qkv.weight": 10},
                         ["calib.txt"], 3, 40)
    back = read_imatrix(write_imatrix(m, tmp_path / "m.gguf"))
    assert back.datasets == ["calib.txt"] and (back.chunk_count, back.chunk_size) == (3, 40)
    np.testing.assert_allclose(back.sums["blk.0.attn_qkv.weight"], m.sums["blk.0.attn_qkv.weight"])
    assert back.counts == {"blk.0.attn_qkv.weight": 10}
    (tmp_path / "text.gguf").write_text("hello")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes((tmp_path / "m.gguf").read_bytes()[:100])
    for bad, says in ((tmp_path / "text.gguf", "not a GGUF importance matrix"), (cut, "cannot read the importance matrix"),
                      (tmp_path / "none.gguf", "no such importance matrix file")):
        with pytest.raises(SlmkitError, match=says):
            read_imatrix(bad)


def test_planted_outlier_columns_break_round_to_nearest_and_calibration_mends_them(tmp_path):
    """ln_1 and ln_2 gains 40x larger on 4 of 64 channels: the qkv and ffn_up matrices see 4 huge input columns,
    whose rounding errors dominate a round-to-nearest Q4_0 and ONNX int4; calibration (importance-weighted rounding
    and error compensation; ONNX: error compensation) cuts the KL. Fails with calibration ignored (both formats
    were run with --calibration dropped from the second conversion: ratio 1.0)."""
    from safetensors.numpy import load_file, save_file

    from slmkit.demo.dataset import examples
    from slmkit.loader import load
    from slmkit.metrics import summarize_drift, token_drift
    from slmkit.runtimes.reference import ReferenceRuntime
    from slmkit.synthetic import write_random_gpt2

    folder = write_random_gpt2(tmp_path / "planted", n_embd=64, n_layer=2, n_head=4)
    w = load_file(folder / "model.safetensors")
    for k in w:
        if k.endswith(("ln_1.weight", "ln_2.weight")):
            v = w[k].astype(np.float32)
            v[:4] *= 40
            w[k] = v.astype(w[k].dtype)
    save_file(w, folder / "model.safetensors")
    kl = {}
    for name, extra in (("rtn", []), ("cal", ["--calibration", "demo"])):
        code, out = quantize(str(folder), "--format", "gguf,onnx", "--quant", "q4_0,int4", "--out",
                             str(tmp_path / name), *extra)
        assert code == 0, out
    texts = [e.text for e in examples("eval", 40)]
    with ReferenceRuntime(folder) as ref:
        ids = [ref.tokenize(t) for t in texts]
        ref_logits = [ref.score(i) for i in ids]
    for name in ("rtn", "cal"):
        for artifact in ("Q4_0.gguf", "int4.onnx"):
            with load(next((tmp_path / name).glob(f"*-{artifact}"))) as rt:
                kl[name, artifact] = summarize_drift([token_drift(r, rt.score(i), i)
                                                      for r, i in zip(ref_logits, ids)])["mean_kl"]
    assert kl["cal", "Q4_0.gguf"] < 0.7 * kl["rtn", "Q4_0.gguf"], kl
    assert kl["cal", "int4.onnx"] < 0.7 * kl["rtn", "int4.onnx"], kl


def test_calibrated_artifacts_record_their_calibration_and_files_go_both_ways(tiny_demo, tmp_path):
    out = tmp_path / "cal"
    code, text = quantize(str(tiny_demo), "--quant", "q4_0,q8_0", "--calibration", "demo", "--out", str(out),
                          "--imatrix-out", str(tmp_path / "im.gguf"))
    assert code == 0 and "importance matrix: 9 tensors" in text, text  # 2 blocks x 4 matrices, the head
    import json

    entries = json.loads((out / "manifest.json").read_text())["artifacts"]
    cal = entries[next(n for n in entries if n.endswith("Q4_0.gguf"))]["calibration"]
    assert cal["method"] == "imatrix+gptq" and cal["source"] == "demo" and cal["tokens"] >= MIN_TOKENS and len(cal["sha256"]) == 64
    m = read_imatrix(tmp_path / "im.gguf")
    assert len(m.sums) == 9 and m.datasets == ["demo"]
    code, text = quantize(str(tiny_demo), "--quant", "q4_0", "--imatrix", str(tmp_path / "im.gguf"),
                          "--out", str(tmp_path / "again"))
    assert code == 0, text
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())["artifacts"]
    assert [e["calibration"]["source"] for e in again.values()] == [f"imatrix file {tmp_path / 'im.gguf'}"]
    rtn = tmp_path / "rtn"
    assert quantize(str(tiny_demo), "--quant", "q4_0", "--out", str(rtn))[0] == 0
    entries = json.loads((rtn / "manifest.json").read_text())["artifacts"]
    assert all(e["calibration"] is None for e in entries.values())


def test_the_demo_calibration_split_shares_nothing_with_the_evaluation_files():
    from slmkit.demo.calibration import evaluation_intents
    from slmkit.demo.dataset import EVAL_FILES, examples

    texts = demo_texts()
    assert len(texts) >= 1000 and not set(texts) & evaluation_texts()
    intents = {t.split("<|out|>")[0].split(">")[-1].strip().casefold() for t in texts}
    assert len(intents) > 500 and not intents & evaluation_intents()
    assert len(evaluation_intents()) == len({e.intent.casefold() for s in EVAL_FILES for e in examples(s, 10**6)}) > 100


@pytest.mark.parametrize("content, says", [
    (b"", "no calibration texts"),
    (b"\x00\x01\x02binary", "a binary file"),
    (b"caf\xe9\n", "not UTF-8 text"),
    (b"a few words\n", f"at least {MIN_TOKENS} are needed"),
    ("OVERLAP", "also demo evaluation texts"),
])
def test_bad_calibration_files_are_one_line_and_exit_1(tiny_demo, tmp_path, content, says):
    path = tmp_path / "calib.txt"
    if content == "OVERLAP":
        content = ("\n".join(sorted(evaluation_texts())[:3] + ["a fresh text"] * 400)).encode()
    path.write_bytes(content)
    code, out = quantize(str(tiny_demo), "--quant", "q4_0", "--calibration", str(path), "--out", str(tmp_path / "o"))
    assert code == 1 and says in out and "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "o").exists()  # refused before any work


def test_types_that_need_an_importance_matrix_and_mismatched_matrices_are_refused(tiny_demo, odd_gpt2, tmp_path):
    code, out = quantize(str(tiny_demo), "--quant", "iq3_xxs", "--out", str(tmp_path / "o"))
    assert code == 1 and "iq3_xxs needs an importance matrix" in out and len(out.strip().splitlines()) == 1, out
    m = ImportanceMatrix({"blk.0.attn_qkv.weight": np.ones(320)}, {"blk.0.attn_qkv.weight": 5}, ["x"], 1, 5)
    write_imatrix(m, tmp_path / "other.gguf")  # rows of 320: another model's
    code, out = quantize(str(tiny_demo), "--quant", "q4_0", "--imatrix", str(tmp_path / "other.gguf"),
                         "--out", str(tmp_path / "o2"))
    assert code == 1 and "computed for another model" in out and "Traceback" not in out, out
    code, out = quantize(str(tiny_demo), "--quant", "q4_0", "--imatrix", str(tmp_path / "other.gguf"),
                         "--calibration", "demo", "--out", str(tmp_path / "o3"))
    assert code == 1 and "pass one" in out, out
    code, out = quantize(str(tiny_demo), "--format", "onnx", "--quant", "int4", "--imatrix", str(tmp_path / "other.gguf"),
                         "--out", str(tmp_path / "o4"))
    assert code == 1 and "only applies to --format gguf" in out, out


def test_block_codecs_read_and_write_llama_cpps_bytes_exactly(tmp_path):
    """Every format the error compensation rewrites: unpacking llama.cpp's codes and scales gives gguf-py's own
    dequantization, and packing them again gives the same bytes; the compensated file still loads and its
    matrices stay on llama.cpp's grid (only codes change)."""
    import json

    import gguf
    from gguf import quants

    from slmkit.converters import gptq
    from slmkit.synthetic import write_random_gpt2

    folder = write_random_gpt2(tmp_path / "w256", n_embd=256, n_layer=1, n_head=4)  # K-quant rows: 256
    seen = set()
    for quant in ("q4_k_m", "q4_0", "q8_0"):
        for name, extra in (("rtn", []), ("cal", ["--calibration", "demo"])):
            out = tmp_path / f"{quant}-{name}"
            code, text = quantize(str(folder), "--quant", quant, "--out", str(out), *extra)
            assert code == 0, text
        files = {n: next((tmp_path / f"{quant}-{n}").glob("*.gguf")) for n in ("rtn", "cal")}
        entry = next(iter(json.loads((tmp_path / f"{quant}-cal" / "manifest.json").read_text())["artifacts"].values()))
        assert entry["calibration"]["method"] == "imatrix+gptq"
        for t in gguf.GGUFReader(str(files["cal"])).tensors:
            fmt = gptq.FORMATS.get(t.tensor_type.name)
            if fmt is None:
                continue
            raw = np.asarray(t.data)
            grid, codes = fmt.grid(raw, raw.shape[0]), fmt.codes(raw)
            assert 0 <= codes.min() and codes.max() <= fmt.qmax
            assert np.array_equal(fmt.pack(raw, codes), raw), t.name
            np.testing.assert_allclose(gptq.dequantize(grid, codes), quants.dequantize(raw, t.tensor_type), rtol=0,
                                       atol=1e-6 * float(np.abs(grid.scale).max() * fmt.qmax + 1))
            seen.add(fmt.name)
    assert seen == {"Q4_K", "Q6_K", "Q4_0", "Q8_0"}


def test_error_compensation_lowers_the_output_error_on_the_same_grid():
    """Random weights, correlated inputs: GPTQ's codes on a fixed Q4_0-like grid change the layer's outputs less
    than rounding each weight to its nearest grid point (its objective, on the inputs it saw)."""
    from slmkit.converters.gptq import Grid, dequantize, gptq_codes, output_error, round_to_grid

    rng = np.random.default_rng(0)
    rows, cols = 48, 256
    w = rng.normal(0, 0.02, (rows, cols))
    mix = rng.normal(size=(cols, cols)) / np.sqrt(cols) + np.eye(cols)
    x = rng.normal(size=(2000, cols)) @ mix
    h = x.T @ x
    d = np.abs(w).reshape(rows, -1, 32).max(axis=2) / 7
    grid = Grid(d.astype(np.float32), (8 * d).astype(np.float32), 32, 15)
    nearest = round_to_grid(w, np.repeat(grid.scale, 32, 1), np.repeat(grid.offset, 32, 1), 15)
    compensated = gptq_codes(w, h, grid)
    e_near = output_error(w, dequantize(grid, nearest), h)
    e_comp = output_error(w, dequantize(grid, compensated), h)
    assert e_comp < 0.7 * e_near, (e_comp, e_near)


@pytest.mark.parametrize("bits,k", [(4, 96), (8, 96), (4, 80)])  # 80: a padded last block
def test_matmulnbits_codes_unpack_and_pack_onnxruntimes_bytes_exactly(bits, k):
    """The codes read from onnxruntime's own MatMulNBits blob dequantize to within half a step of the weight, and
    pack back to the same bytes; compensation on that grid keeps the bytes' layout (a wrong nibble order fails)."""
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    from slmkit.converters.gptq import Grid, dequantize
    from slmkit.converters.onnx_gptq import compensate_graph, pack, unpack

    rng = np.random.default_rng(bits + k)
    n = 24
    w = rng.normal(0, 0.05, (k, n)).astype(np.float32)  # MatMul's [in, out]
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    q = MatMulNBitsQuantizer(model, bits=bits, block_size=32, is_symmetric=True, accuracy_level=4)
    q.process()
    model = q.model.model
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    blob, scales = inits[f"w_Q{bits}"], inits["w_scales"].reshape(n, -1).astype(np.float32)
    codes = unpack(blob, bits, k)
    grid = Grid(scales, 2 ** (bits - 1) * scales, 32, 2 ** bits - 1)
    step = np.repeat(np.abs(scales), 32, axis=1)[:, :k]  # a block's extreme value may sit one step off the grid
    assert (np.abs(dequantize(grid, codes) - w.T) <= step + 1e-6).all()
    assert np.array_equal(pack(blob, codes, bits), blob)
    x = rng.normal(size=(500, k))
    ratios = compensate_graph(model, {"w": w}, {"w": x.T @ x})
    assert ratios["w"] <= 1.0
    after = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}[f"w_Q{bits}"]
    assert (np.abs(dequantize(grid, unpack(after, bits, k)) - w.T) <= 8 * step).all()


def test_matmul_nbits_quantizes_exactly_the_weights_named():
    """Mixed 4/8-bit graphs (``--max-kl`` for ONNX): each MatMul gets the bits asked for. With onnxruntime's
    nodes_to_include, the 4-bit pass quantized every MatMul (shown failing before the nodes_to_exclude fix)."""
    from onnx import TensorProto, helper, numpy_helper

    from slmkit.converters.onnx_quantize import _matmul_nbits

    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.normal(size=(64, 64)).astype(np.float32), f"w{i}") for i in range(3)]
    nodes = [helper.make_node("MatMul", ["x" if i == 0 else f"y{i - 1}", f"w{i}"], [f"y{i}"], name=f"mm{i}")
             for i in range(3)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y2", TensorProto.FLOAT, [1, 64])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model = _matmul_nbits(_matmul_nbits(model, 4, ["w0", "w2"]), 8, ["w1"])
    bits = {n.input[1]: helper.get_attribute_value(next(a for a in n.attribute if a.name == "bits"))
            for n in model.graph.node}
    assert bits == {"w0_Q4": 4, "w1_Q8": 8, "w2_Q4": 4}, bits


def test_bench_names_calibrated_artifacts_and_refuses_their_calibration_texts(tiny_demo, tmp_path):
    calib = tmp_path / "calib.txt"
    calib.write_text("\n".join(demo_texts()[:300]) + "\n")
    art = tmp_path / "art"
    code, out = quantize(str(tiny_demo), "--quant", "q8_0", "--calibration", str(calib), "--out", str(art))
    assert code == 0, out
    r = CliRunner().invoke(cli, ["bench", "--artifacts", str(art), "--quick", "--scorer", "none", "--no-plots",
                                 "--texts", str(calib), "--out", str(tmp_path / "report")])
    assert r.exit_code == 1 and "was calibrated on" in r.output and "--texts FILE" in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "report").exists()
    other = tmp_path / "other.txt"
    other.write_text("\n".join(demo_texts()[300:330]) + "\n")
    r = CliRunner().invoke(cli, ["bench", "--artifacts", str(art), "--quick", "--scorer", "none", "--no-plots",
                                 "--texts", str(other), "--out", str(tmp_path / "report2"), "--threads", "1"])
    assert r.exit_code == 0, r.output
    import json

    rows = json.loads((tmp_path / "report2" / "report.json").read_text())["results"]
    assert [r_["label"] for r_ in rows[1:]] == ["gguf q8_0 (calibrated)"]
    assert rows[1]["calibration"]["source"] == str(calib) and rows[0].get("calibration") is None


def test_max_kl_writes_the_smallest_mix_that_meets_the_budget_or_fails_naming_the_figure(tmp_path):
    """A one-block model with K-quant rows: the budget artifacts (GGUF and ONNX) meet their held-out KL, are
    smaller than 8 bits everywhere, the ONNX file holds the bits its recipe chose per MatMul (onnxruntime's
    quantizer ignored a node list once and quantized every MatMul at 4 bits: this failed), and an unreachable
    budget fails naming what was measured."""
    import json

    from slmkit.synthetic import write_random_gpt2

    folder = write_random_gpt2(tmp_path / "w256", n_embd=256, n_layer=1, n_head=4)
    calib = tmp_path / "calib.txt"
    calib.write_text("\n".join(demo_texts()[:300]) + "\n")  # a fifth of the split: a quicker test
    out = tmp_path / "budget"
    code, text = quantize(str(folder), "--format", "gguf,onnx", "--calibration", str(calib), "--max-kl", "0.002",
                          "--out", str(out))
    assert code == 0 and "sensitivity: 5 tensors x 4 types" in text and "sensitivity: 5 tensors x 2 types" in text, text
    entry = json.loads((out / "manifest.json").read_text())["artifacts"][f"{folder.name}-KL0.002.gguf"]
    budget = entry["budget"]
    assert budget["max_kl"] == 0.002 and budget["measured_kl"] <= 0.002 and entry["quant"] == "kl0.002"
    assert set(budget["tensor_types_chosen"]) == {"token_embd.weight"} | {
        f"blk.0.{t}.weight" for t in ("attn_qkv", "attn_output", "ffn_up", "ffn_down")}
    assert entry["bits_per_weight"] < 8.5 and entry["calibration"]["method"] == "imatrix+gptq"
    onnx_entry = json.loads((out / "manifest.json").read_text())["artifacts"][f"{folder.name}-KL0.002.onnx"]
    chosen = onnx_entry["budget"]["tensor_types_chosen"]
    assert onnx_entry["budget"]["measured_kl"] <= 0.002 and onnx_entry["calibration"]["method"] == "gptq"
    assert set(chosen) == {"lm_head"} | {f"h.0.{m}.weight" for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}
    import onnx
    from onnx import helper

    graph = onnx.load(str(out / f"{folder.name}-KL0.002.onnx")).graph
    bits = {n.input[1].rsplit("_Q", 1)[0]: helper.get_attribute_value(next(a for a in n.attribute if a.name == "bits"))
            for n in graph.node if n.op_type == "MatMulNBits"}
    assert bits == {name: int(t[3:]) for name, t in chosen.items()}, (bits, chosen)
    code, text = quantize(str(folder), "--calibration", str(calib), "--max-kl", "1e-9", "--out", str(tmp_path / "never"))
    assert code == 1 and "--max-kl 1e-09 was not met" in text and "measured mean KL" in text, text
    assert not list((tmp_path / "never").glob("*KL*.gguf"))
    code, text = quantize(str(folder), "--max-kl", "0.01", "--out", str(tmp_path / "nocal"))
    assert code == 1 and "pass --calibration" in text, text
