"""The ``slmkit`` command line. Bad input is one line on stderr and a non-zero exit, never a traceback."""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from slmkit import __version__
from slmkit.errors import SlmkitError

MODEL_HELP = "Hugging Face GPT-2 folder; the shipped demo model when omitted."


class _Group(click.Group):
    """Turns SlmkitError into ``error: ...`` on stderr with exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SlmkitError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slmkit")
def cli() -> None:
    """Deploy small GPT-2 language models to desktop and mobile-class CPUs."""


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


@cli.command()
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(model: str | None, as_json: bool) -> None:
    """Describe a GPT-2 folder: shape, parameters, vocabulary, control tokens, weights, tokenizer."""
    from slmkit.model_folder import open_model_folder
    from slmkit.tokenizer import TextTokenizer

    folder = open_model_folder(model)
    tok = TextTokenizer.from_folder(folder.path)
    s = folder.shape
    base_vocab = tok.vocab_size - len([t for t in tok.added_tokens if t != "<|endoftext|>"])
    data = {
        "model": folder.name, "path": str(folder.path.resolve()), "architecture": "gpt2",
        "n_layer": s.n_layer, "n_embd": s.n_embd, "n_head": s.n_head, "n_inner": s.n_inner,
        "n_positions": s.n_positions, "layer_norm_epsilon": s.layer_norm_epsilon,
        "tie_word_embeddings": s.tie_word_embeddings, "parameters": folder.n_params,
        "vocab_size": s.vocab_size, "tokenizer_vocab": tok.vocab_size, "base_vocab": base_vocab,
        "added_tokens": tok.added_tokens, "tokenizer": tok.kind,
        "weights_file": folder.weights.name, "weights_format": folder.weights_format,
        "weights_dtypes": folder.dtypes, "weights_bytes": folder.weights.stat().st_size,
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{data['model']}  ({data['path']})")
    click.echo(f"  architecture   GPT-2: {s.n_layer} layers, n_embd {s.n_embd}, {s.n_head} heads, "
               f"n_inner {s.n_inner}, context {s.n_positions}")
    click.echo(f"  parameters     {folder.n_params:,} ({folder.n_params / 1e6:.1f}M, tied embedding/head: "
               f"{'yes' if s.tie_word_embeddings else 'no'})")
    click.echo(f"  vocabulary     {s.vocab_size} in config; tokenizer {tok.vocab_size} "
               f"({base_vocab} base + {len(tok.added_tokens) - 1} added control tokens)")
    click.echo(f"  control tokens {' '.join(t for t in tok.added_tokens if t != '<|endoftext|>') or '(none)'}")
    dtypes = ", ".join(f"{k} x{v}" for k, v in folder.dtypes.items()) or "unknown until loaded (pickle checkpoint)"
    click.echo(f"  weights        {folder.weights.name}, {_mib(data['weights_bytes'])}, {dtypes}")
    click.echo(f"  tokenizer      byte-level BPE from {tok.kind}")


@cli.command()
@click.argument("model", required=False)
@click.option("--format", "fmt", type=click.Choice(["gguf", "onnx"]), default="gguf", show_default=True,
              help="Artifact format.")
@click.option("--quant", default=None, help="Comma-separated types, or 'all'. gguf: f32,f16,q8_0,q6_k,q5_k_m,"
              "q4_k_m,q4_0 (default q8_0,q4_k_m); onnx: fp32,fp16,int8,int4 (default int8,int4).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: out/<model name>).")
@click.option("--embedding-type", default=None,
              help="gguf: type of the tied token embedding / output head, q8_0, q6_k or f16 (default: llama.cpp's "
              "rule, q6_k or q8_0); onnx int4: the embedding tables, int8 (default), int4 (GatherBlockQuantized), "
              "shared (one 4-bit tensor for embedding and head; needs --head-bits 4) or fp32.")
@click.option("--block-size", type=int, default=32, show_default=True, help="onnx int4: quantization block size.")
@click.option("--accuracy-level", type=click.IntRange(0, 4), default=4, show_default=True,
              help="onnx int4: 4 = int8 activations (fastest on CPU), 0 = fp32 activations.")
@click.option("--head-bits", type=click.Choice(["8", "4"]), default="8", show_default=True,
              help="onnx int4: bits of the output head (an int4 head is known to cause repetition).")
@click.option("--threads", type=int, default=0, help="Threads (default: all cores).")
def quantize(model: str | None, fmt: str, quant: str | None, out: str | None, embedding_type: str | None,
             block_size: int, accuracy_level: int, head_bits: str, threads: int) -> None:
    """Convert a GPT-2 folder to checked, quantized artifacts with a manifest."""
    from pathlib import Path

    from slmkit.model_folder import open_model_folder

    folder = open_model_folder(model)
    dest = Path(out) if out else Path("out") / folder.name
    if fmt == "gguf":
        from slmkit.converters.gguf_pipeline import convert_gguf
        from slmkit.converters.gguf_quantize import DEFAULT_QUANTS, EMBEDDING_TYPES, QUANTS, parse_quants

        if embedding_type is not None and embedding_type not in EMBEDDING_TYPES:
            raise SlmkitError(f"unknown embedding type {embedding_type!r}; valid: {', '.join(EMBEDDING_TYPES)}")
        quants = list(QUANTS) if quant == "all" else parse_quants(quant) if quant is not None else list(DEFAULT_QUANTS)
        manifest = convert_gguf(folder, quants, dest, threads, embedding_type, log=click.echo)
    else:
        from slmkit.converters.onnx_pipeline import convert_onnx
        from slmkit.converters.onnx_quantize import DEFAULT_PRECISIONS, PRECISIONS, Int4Options, parse_precisions

        precisions = (list(PRECISIONS) if quant == "all" else parse_precisions(quant) if quant is not None
                      else list(DEFAULT_PRECISIONS))
        opts = Int4Options(block_size, accuracy_level, int(head_bits), embedding_type or "int8")
        opts.check()
        manifest = convert_onnx(folder, precisions, dest, threads, opts, log=click.echo)
    click.echo(f"{len(manifest['artifacts'])} artifacts and manifest.json in {dest}")


@cli.command()
@click.argument("args", nargs=-1, required=True, metavar="[ARTIFACT_OR_MODEL] INTENT")
@click.option("--task", type=click.Choice(["t2i", "search", "recommend"]), default="t2i", show_default=True)
@click.option("--length", type=click.Choice(["short", "medium", "long"]), default="medium", show_default=True)
@click.option("--relevance", type=click.Choice(["high", "mid", "low"]), default="high", show_default=True,
              help="Desired reward bucket (upside-down RL control).")
@click.option("--device", default="cpu", show_default=True, help="Device profile (cpu, mobile, or a user profile).")
@click.option("-n", "--candidates", "n", type=int, default=1, show_default=True, help="Sampled candidates.")
@click.option("--temperature", type=float, default=0.7, show_default=True,
              help="Sampling temperature (seeded, so repeatable); 0 = greedy, which loops on small models.")
@click.option("--top-p", type=float, default=0.95, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-new-tokens", type=int, default=64, show_default=True)
@click.option("--stream", "do_stream", is_flag=True, help="Print text as it is generated.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--no-verify", is_flag=True, help="Skip the sha256 check against the manifest.")
def generate(args: tuple[str, ...], task: str, length: str, relevance: str, device: str, n: int,
             temperature: float, top_p: float, seed: int, max_new_tokens: int, do_stream: bool,
             as_json: bool, no_verify: bool) -> None:
    """Generate prompts for an intent with a model or artifact (the demo model when omitted)."""
    import time
    from pathlib import Path

    from slmkit.loader import load
    from slmkit.prompts import build_prompt

    if len(args) > 2:
        raise SlmkitError("expected [ARTIFACT_OR_MODEL] INTENT (quote an intent of several words)")
    target, intent = (args[0], args[1]) if len(args) == 2 else (None, args[0])
    if target is None and Path(intent).exists():
        raise SlmkitError(f"missing INTENT after {intent} (usage: slmkit generate [ARTIFACT_OR_MODEL] INTENT)")
    prompt = build_prompt(intent, task, length, relevance)
    opts = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed}
    with load(target, device=device, verify=not no_verify) as rt:
        t0 = time.perf_counter()
        if do_stream and not as_json and n == 1:
            for piece in rt.stream(prompt, **opts):
                click.echo(piece, nl=False)
            click.echo()
            return
        outs = rt.generate(prompt, n=n, **opts)
        outs = [outs] if isinstance(outs, str) else outs
        seconds = time.perf_counter() - t0
        if as_json:
            info = {k: v for k, v in rt.info.items() if k != "tensor_types"}
            click.echo(json.dumps({"intent": intent, "task": task, "length": length, "relevance": relevance,
                                   "prompt": prompt, "outputs": outs, "settings": opts, "seconds": round(seconds, 3),
                                   "runtime": info}, indent=2))
        else:
            for out in outs:
                click.echo(out)


def main() -> None:
    cli(prog_name="slmkit")


if __name__ == "__main__":
    sys.exit(main())
