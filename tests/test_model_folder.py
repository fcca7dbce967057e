"""Loading good and bad Hugging Face GPT-2 folders: every defect is one clear SlmkitError."""
import json
import pickle
import shutil
import struct

import numpy as np
import pytest

from slmkit.errors import SlmkitError
from slmkit.model_folder import open_model_folder
from slmkit.synthetic import write_random_gpt2
from slmkit.tokenizer import TextTokenizer
from slmkit.weights import load_weights


def _copy(src, tmp_path, name="m"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def test_odd_shape_with_added_tokens_opens(odd_gpt2):
    f = open_model_folder(odd_gpt2)
    assert (f.shape.n_embd, f.shape.n_inner, f.shape.n_head) == (320, 1000, 5)
    assert f.shape.vocab_size == 50259 and f.tokenizer_kind == "vocab.json+merges.txt"
    tok = TextTokenizer.from_folder(odd_gpt2)
    assert tok.encode("<|task:t2i|>hi<|out|>")[0] == 50257 and tok.encode("<|out|>") == [50258]
    w = load_weights(f)
    assert w["h.0.mlp.c_fc.weight"].shape == (320, 1000)
    assert "lm_head.weight" not in w and not any(k.startswith("transformer.") for k in w)



def test_control_tokens_inside_vocab_json_stay_whole(tmp_path):
    """The demo tokenizer as vocab.json + merges.txt + added_tokens.json, its control tokens inside the
    vocabulary: encoded as transformers encodes them, the same ids as from tokenizer.json."""
    from transformers import AutoTokenizer

    files = write_random_gpt2(tmp_path / "files", tokenizer="demo-files")
    single = write_random_gpt2(tmp_path / "single")
    assert open_model_folder(files).tokenizer_kind == "vocab.json+merges.txt"
    text = "<|task:t2i|><|len:short|><|rel:high|> a cozy cabin, ünïcode<|out|> x<|endoftext|>"
    ours, hf = TextTokenizer.from_folder(files), AutoTokenizer.from_pretrained(str(files))
    assert ours.encode(text) == hf(text)["input_ids"] == TextTokenizer.from_folder(single).encode(text)
    assert ours.encode("<|task:t2i|>")[0] == 1 and ours.decode(ours.encode(text)) == text

    declared = json.loads((files / "added_tokens.json").read_text())
    (files / "added_tokens.json").write_text(json.dumps({**declared, "<|out|>": 7}))
    (files / "tokenizer_config.json").unlink()
    with pytest.raises(SlmkitError, match=r"added token '<\|out\|>' is declared with id 7 but the vocabulary gives it 10"):
        TextTokenizer.from_folder(files)


def test_add_prefix_space_is_honoured_and_gguf_refuses_it(tmp_path):
    from transformers import AutoTokenizer

    from slmkit.converters.gguf_writer import write_gguf

    folder = write_random_gpt2(tmp_path / "prefix", tokenizer="demo-files")
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**cfg, "add_prefix_space": True}))
    ours = TextTokenizer.from_folder(folder)
    text = "<|task:search|>cozy cabin<|out|>"
    assert ours.adds_prefix_space and not TextTokenizer.from_folder(write_random_gpt2(tmp_path / "plain")).adds_prefix_space
    assert ours.encode(text) == AutoTokenizer.from_pretrained(str(folder))(text)["input_ids"]
    with pytest.raises(SlmkitError, match="adds a prefix space .* convert it to ONNX instead"):
        write_gguf(open_model_folder(folder), tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()

def test_pytorch_bin_loads_with_weights_only(tmp_path):
    folder = write_random_gpt2(tmp_path / "bin", weights="pytorch")
    f = open_model_folder(folder)
    assert f.weights_format == "pytorch"
    assert load_weights(f)["wte.weight"].shape[1] == 64


def test_pickled_code_is_refused(tmp_path, tiny_demo):
    folder = _copy(tiny_demo, tmp_path)
    (folder / "model.safetensors").unlink()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"wte.weight": Evil()}))
    with pytest.raises(SlmkitError, match="corrupt or unsafe checkpoint"):
        load_weights(open_model_folder(folder))


def _expect(folder, pattern):
    with pytest.raises(SlmkitError, match=pattern) as e:
        f = open_model_folder(folder)
        load_weights(f)
        TextTokenizer.from_folder(folder)
    assert "\n" not in str(e.value)


def test_missing_folder_and_file_instead(tmp_path):
    _expect(tmp_path / "nope", "no such model folder")
    (tmp_path / "x.gguf").write_bytes(b"GGUF")
    _expect(tmp_path / "x.gguf", "is a file; expected a Hugging Face model folder")


def test_config_defects(tmp_path, tiny_demo):
    folder = _copy(tiny_demo, tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text("{not json")
    _expect(folder, "corrupt config.json")
    (folder / "config.json").write_text(json.dumps({**cfg, "model_type": "llama"}))
    _expect(folder, "unsupported architecture 'llama'; slmkit supports GPT-2")
    (folder / "config.json").write_text(json.dumps({**cfg, "n_head": 5}))
    _expect(folder, "n_embd 64 is not a multiple of n_head 5")
    (folder / "config.json").unlink()
    _expect(folder, "missing config.json")


def test_shape_mismatch_with_config(tmp_path, tiny_demo):
    folder = _copy(tiny_demo, tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "n_embd": 128}))
    _expect(folder, r"shape mismatch with config: wte.weight is \[\d+, 64\], config.json implies \[\d+, 128\]")
    (folder / "config.json").write_text(json.dumps({**cfg, "n_layer": 3}))
    _expect(folder, "weights lack tensor h.2.ln_1.weight")


def test_weights_defects(tmp_path, tiny_demo):
    folder = _copy(tiny_demo, tmp_path)
    st = folder / "model.safetensors"
    data = st.read_bytes()
    st.write_bytes(data[: len(data) // 2])
    _expect(folder, "outside the file or has the wrong size")
    st.write_bytes(data[:5])
    _expect(folder, "truncated safetensors file")
    st.write_bytes(struct.pack("<Q", 10**12) + data[8:])
    _expect(folder, "corrupt safetensors header")
    n = struct.unpack("<Q", data[:8])[0]
    st.write_bytes(data[:8] + b"\xff" * n + data[8 + n:])
    _expect(folder, "corrupt safetensors header")
    st.unlink()
    _expect(folder, "missing weights")


def test_other_architecture_tensors_are_refused(tmp_path, tiny_demo):
    from safetensors.numpy import save_file

    folder = _copy(tiny_demo, tmp_path)
    save_file({"model.layers.0.self_attn.q_proj.weight": np.zeros((4, 4), np.float16)}, str(folder / "model.safetensors"))
    _expect(folder, "weights lack tensor wte.weight")


def test_tokenizer_defects(tmp_path, tiny_demo):
    folder = _copy(tiny_demo, tmp_path)
    (folder / "tokenizer.json").write_text('{"truncated": ')
    _expect(folder, "corrupt tokenizer")
    (folder / "tokenizer.json").write_text('{"model": {"type": "Nope"}}')
    _expect(folder, "corrupt tokenizer")
    (folder / "tokenizer.json").unlink()
    _expect(folder, "missing tokenizer: .* has neither tokenizer.json nor vocab.json")


def test_a_null_or_bad_bos_token_id_converts_or_is_one_line(tmp_path, tiny_demo):
    """``"bos_token_id": null`` (transformers reads it as unset) was a TypeError traceback in the GGUF writer and
    the genai config; now both formats convert with the EOS id in its place, and an id outside the vocabulary is one
    line naming the key."""
    from click.testing import CliRunner

    from slmkit.cli import cli
    from slmkit.gguf_file import open_gguf

    folder = _copy(tiny_demo, tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "bos_token_id": None}))
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["quantize", str(folder), "--format", "gguf,onnx", "--quant", "q8_0,int8",
                                 "--threads", "1", "--out", str(out)])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    eos = TextTokenizer.from_folder(folder).eos_id
    genai = json.loads((out / "genai_config.json").read_text())
    assert genai["model"]["bos_token_id"] == eos
    assert open_gguf(next(out.glob("*.gguf"))).metadata["tokenizer.ggml.bos_token_id"] == eos
    (folder / "config.json").write_text(json.dumps({**cfg, "bos_token_id": "start"}))
    r = CliRunner().invoke(cli, ["quantize", str(folder), "--quant", "q8_0", "--out", str(tmp_path / "o2")])
    assert r.exit_code == 1 and "bos_token_id 'start' is not a token id" in r.output, r.output
