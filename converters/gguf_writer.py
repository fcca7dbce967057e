"""Write a Hugging Face GPT-2 folder as a GGUF file for llama.cpp's ``gpt2`` architecture (f32 / f16).

Tensor names come from gguf's TensorNameMap; HF Conv1D weights are stored [in, out] and are transposed
to llama.cpp's [out, in] (a square matrix would load silently wrong otherwise). A tied lm_head is
not written: llama.cpp reuses ``token_embd`` as the output; an untied one becomes ``output.weight``. The tokenizer goes in as GPT-2 byte-level
BPE with pre-tokenizer ``gpt-2``, control tokens typed CONTROL, merges, eos and no BOS.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from slmkit.version import __version__
from slmkit.errors import SlmkitError
from slmkit.files import atomic_path
from slmkit.model_folder import ModelFolder
from slmkit.tokenizer import TextTokenizer
from slmkit.weights import load_weights

ARCH = "gpt2"
CONV1D_SUFFIXES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def gguf_vocab(folder: ModelFolder, tokenizer: TextTokenizer) -> tuple[list[str], list[int]]:
    """Token strings and types in id order, padded to the model's vocab_size."""
    import gguf

    n = folder.shape.vocab_size
    if tokenizer.vocab_size > n:
        raise SlmkitError(f"{folder.path}: tokenizer has {tokenizer.vocab_size} tokens but the model only "
                          f"{n} embedding rows")
    specials = set(tokenizer.added_tokens)
    by_id = {i: t for t, i in tokenizer.vocab().items()}
    tokens, types = [], []
    for i in range(n):
        tok = by_id.get(i)
        if tok is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(tok)
            types.append(gguf.TokenType.CONTROL if tok in specials else gguf.TokenType.NORMAL)
    return tokens, [int(t) for t in types]


def gguf_tensors(folder: ModelFolder, dtype: str) -> dict[str, np.ndarray]:
    """GGUF tensor name → array (2-D weights in ``dtype``, 1-D tensors in f32)."""
    import gguf

    names = gguf.TensorNameMap(gguf.MODEL_ARCH.GPT2, folder.shape.n_layer)
    out: dict[str, np.ndarray] = {}
    for hf_name, arr in load_weights(folder).items():
        if hf_name == "lm_head.weight":  # untied: llama.cpp's gpt2 reads an ``output.weight`` when there is one
            out["output.weight"] = np.ascontiguousarray(arr, dtype=dtype)  # nn.Linear: already [vocab, n_embd]
            continue
        base, suffix = hf_name.rsplit(".", 1)
        name = names.get_name(base)
        if name is None:
            raise SlmkitError(f"{folder.path}: no GGUF name for tensor {hf_name}")
        if hf_name.endswith(CONV1D_SUFFIXES):
            arr = arr.T
        arr = np.ascontiguousarray(arr, dtype=np.float32 if arr.ndim == 1 else dtype)
        out[f"{name}.{suffix}"] = arr
    return out


def write_gguf(folder: ModelFolder, dest: Path, dtype: str = "f16") -> Path:
    """Write ``dest`` (f16 or f32) atomically; returns it."""
    import gguf

    if dtype not in ("f16", "f32"):
        raise SlmkitError(f"write_gguf writes f16 or f32, not {dtype}")
    s = folder.shape
    tokenizer = TextTokenizer.from_folder(folder.path)
    if tokenizer.adds_prefix_space:
        raise SlmkitError(f"{folder.path}: its tokenizer adds a prefix space (add_prefix_space), which llama.cpp's "
                          "GPT-2 tokenizer cannot do; convert it to ONNX instead")
    tokens, types = gguf_vocab(folder, tokenizer)
    special = gguf.SpecialVocab(folder.path, load_merges=True, n_vocab=s.vocab_size)
    if not special.merges:
        raise SlmkitError(f"{folder.path}: tokenizer has no BPE merges")
    tensors = gguf_tensors(folder, np.float16 if dtype == "f16" else np.float32)
    with atomic_path(dest) as tmp:
        w = gguf.GGUFWriter(tmp, ARCH)
        w.add_name(folder.name)
        w.add_string("slmkit.version", __version__)
        w.add_string("slmkit.source_sha256", folder.sha256())
        w.add_context_length(s.n_positions)
        w.add_embedding_length(s.n_embd)
        w.add_feed_forward_length(s.n_inner)
        w.add_block_count(s.n_layer)
        w.add_head_count(s.n_head)
        w.add_layer_norm_eps(s.layer_norm_epsilon)
        w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt-2")
        w.add_token_list(tokens)
        w.add_token_types(types)
        special.special_token_ids.setdefault("eos", tokenizer.eos_id)
        special.special_token_ids.setdefault("bos", folder.token_id("bos_token_id", tokenizer.eos_id))
        special.add_special_token["bos"] = False  # GPT-2 adds no BOS
        special.add_to_gguf(w, quiet=True)
        for name, arr in tensors.items():
            w.add_tensor(name, arr)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.flush()
        intended = w.fout[0].tell()
        w.close()
        # numpy's tofile ignores a failed final flush: a full disk can leave a short file and no error
        if (written := tmp.stat().st_size) < intended:
            raise SlmkitError(f"could not write {dest}: only {written} of {intended} bytes reached the disk "
                              "(disk full or file size limit)")
    return dest
