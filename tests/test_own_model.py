"""A user's own GPT-2 through every command, as issue 15's "done when" walks it: one with no control tokens
and an untied head, one with its own control tokens. Nothing of the demo's prompts may be used on them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from slmkit.cli import cli
from slmkit.synthetic import write_random_gpt2


def run(*args: str):
    r = CliRunner().invoke(cli, list(args))
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.parametrize("kind", ["plain untied", "own control tokens"])
def test_a_users_model_goes_through_every_command(tmp_path, kind):
    if kind == "plain untied":
        model = write_random_gpt2(tmp_path / "plain", n_embd=64, n_layer=1, n_head=4, tokenizer="gpt2",
                                  tie_word_embeddings=False)
        template, controls = None, []
    else:
        controls = ["<|style:photo|>", "<|go|>"]
        model = write_random_gpt2(tmp_path / "own", n_embd=64, n_layer=1, n_head=4, tokenizer="gpt2",
                                  added_tokens=controls)
        template = "<|style:photo|>{intent}<|go|>"
    info = json.loads(run("info", str(model), "--json"))
    assert info["tie_word_embeddings"] == (kind != "plain untied")
    assert [t for t in info["added_tokens"] if t != "<|endoftext|>"] == controls
    texts, prompts = tmp_path / "texts.txt", tmp_path / "prompts.txt"
    texts.write_text("The harbor was quiet at dawn.\nShe rode a red bicycle to the market.\n" * 8)
    prompts.write_text("a lighthouse in fog\nfresh bread on a table\n")
    art = tmp_path / "art"
    run("quantize", str(model), "--format", "gguf,onnx", "--quant", "q8_0,int8", "--out", str(art), "--threads", "1",
        "--texts", str(texts))
    manifest = json.loads((art / "manifest.json").read_text())
    assert sorted(e["format"] for e in manifest["artifacts"].values()) == ["gguf", "onnx"]
    for artifact in sorted(art.glob(f"{model.name}-*.*")):
        if artifact.suffix in (".gguf", ".onnx"):
            assert json.loads(run("info", str(artifact), "--json"))["kind"] == artifact.suffix[1:]
            out = run("generate", str(artifact), "Once upon a time", "--raw", "--max-new-tokens", "6", "--seed", "1")
            assert "<|task:" not in out and "<|out|>" not in out
    bench = ["bench", str(art), "--quick", "--scorer", "none", "--no-plots", "--threads", "1", "--out", str(tmp_path / "r"),
             "--texts", str(texts), "--prompts", str(prompts), *(["--template", template] if template else [])]
    run(*bench)
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    settings = report["settings"]
    assert "texts.txt" in settings["texts_source"] and "prompts.txt" in settings["prompts_source"]
    assert (template in settings["prompts_source"]) if template else ("template" not in settings["prompts_source"])
    assert {r["label"] for r in report["results"]} == {"fp16 reference", "gguf q8_0", "onnx int8"}
    assert all(not r["error"] for r in report["results"])
    verdict = CliRunner().invoke(cli, ["check", str(tmp_path / "r"), "--json"])
    assert verdict.exit_code in (0, 1) and json.loads(verdict.output)["checked"]  # a random model may drift
