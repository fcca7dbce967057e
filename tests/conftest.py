"""Shared fixtures: tiny GPT-2 folders built offline from configs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from slmkit.cli import cli
from slmkit.synthetic import write_random_gpt2


PLAIN_TEXTS = ["The harbor was quiet at dawn, and the boats rocked gently on the grey water.",
               "She rode a red bicycle to the market to buy bread, cheese and a bunch of tulips."] * 4


def quantize_ok(folder: Path | None, out: Path, *args: str) -> str:
    """Run ``slmkit quantize FOLDER --out OUT ARGS`` through click; assert success; return its output. A model
    without the demo's control tokens gets plain English texts for its conversion checks (``--texts``)."""
    from slmkit.prompts import has_control_tokens
    from slmkit.tokenizer import TextTokenizer

    if folder is not None and "--texts" not in args:
        if not has_control_tokens(TextTokenizer.from_folder(folder)):
            texts = Path(out).parent / f"{Path(out).name}-check-texts.txt"
            texts.parent.mkdir(parents=True, exist_ok=True)
            texts.write_text("\n".join(PLAIN_TEXTS) + "\n")
            args = (*args, "--texts", str(texts))
    r = CliRunner().invoke(cli, ["quantize", *([str(folder)] if folder else []), "--out", str(out), "--threads", "1", *args])
    assert r.exit_code == 0, r.output
    return r.output


def decode_by_full_forward(rt, prompt: str, max_new_tokens: int, seed: int = 0, **sampling) -> str:
    """The continuation a runtime should generate, computed independently of its KV-cache decode loop:
    every step scores the whole sequence afresh (``score``) and samples with a fresh sampler."""
    from slmkit.runtimes.sampling import Sampling

    ids = rt.tokenize(prompt)
    sampler = Sampling(**sampling).sampler(seed, lambda t: rt.tokenizer.decode(t, skip_special=True), rt.tokenizer)
    out: list[int] = []
    for _ in range(max_new_tokens):
        tok = sampler.next(rt.score(ids + out)[-1])
        if tok == rt.tokenizer.eos_id:
            break
        sampler.add(tok)
        out.append(tok)
    return rt.detokenize(out)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """A 2-layer random GPT-2 with the demo tokenizer and its control tokens."""
    return write_random_gpt2(tmp_path_factory.mktemp("tiny_demo"), n_embd=64, n_layer=2, n_head=4)


@pytest.fixture(scope="session")
def odd_gpt2(tmp_path_factory) -> Path:
    """GPT-2's real vocabulary plus added tokens, n_embd 320 (not a multiple of 256), n_inner set."""
    return write_random_gpt2(tmp_path_factory.mktemp("odd_gpt2"), n_embd=320, n_layer=2, n_head=5, n_inner=1000,
                             tokenizer="gpt2", added_tokens=["<|task:t2i|>", "<|out|>"])


@pytest.fixture(scope="session")
def demo_artifacts(tmp_path_factory) -> Path:
    """The real demo model as GGUF (f16, q8_0, q4_k_m, q4_0) and ONNX (fp32, int8, int4) files; the lower-bound
    job (devtools/lower_bounds.py, no torch there) passes them prebuilt in ``SLMKIT_TEST_ARTIFACTS``."""
    if os.environ.get("SLMKIT_TEST_ARTIFACTS"):
        return Path(os.environ["SLMKIT_TEST_ARTIFACTS"])
    out = tmp_path_factory.mktemp("demo")
    quantize_ok(None, out, "--quant", "f16,q8_0,q4_k_m,q4_0")
    quantize_ok(None, out, "--format", "onnx", "--quant", "fp32,int8,int4")
    return out


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory, tiny_demo) -> Path:
    """The tiny demo-tokenizer model as a Q8_0 GGUF (the serve tests' artifact); the lower-bound job passes it
    prebuilt in ``SLMKIT_TEST_ARTIFACTS`` (no torch there to quantize with)."""
    if os.environ.get("SLMKIT_TEST_ARTIFACTS"):
        return next(Path(os.environ["SLMKIT_TEST_ARTIFACTS"]).glob("*-Q8_0.gguf"))
    out = tmp_path_factory.mktemp("tiny_gguf")
    quantize_ok(tiny_demo, out, "--quant", "q8_0")
    return next(out.glob("*.gguf"))
