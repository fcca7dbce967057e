"""The ``slmkit`` command line. Bad input is one line on stderr and a non-zero exit, never a traceback."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from slmkit.version import __version__
from slmkit.errors import SlmkitError
from slmkit.prompts import DECODING

if TYPE_CHECKING:
    from slmkit.converters.calibration import Importance
    from slmkit.model_folder import ModelFolder


class _Group(click.Group):
    """Turns SlmkitError into ``error: ...`` on stderr with its exit code (1, or 2 for unusable input), and a
    missing optional dependency into one line naming the extra that installs it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SlmkitError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except ModuleNotFoundError as e:  # an optional dependency this command needs
            from slmkit.extras import missing

            click.echo(f"error: {missing(e)}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slmkit")
def cli() -> None:
    """Deploy small GPT-2 language models to desktop and mobile-class CPUs."""


@cli.command()
@click.argument("target", required=False, metavar="[MODEL_OR_ARTIFACT]")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(target: str | None, as_json: bool) -> None:
    """Describe a GPT-2 folder (shape, parameters, vocabulary, control tokens, weights, tokenizer), an artifact
    folder (its manifest) or a .gguf / .onnx file (format, size, types, checks)."""
    from slmkit.describe import describe

    data, lines = describe(target)
    click.echo(json.dumps(data, indent=2) if as_json else "\n".join(lines))


ONNX_ONLY = ("block_size", "accuracy_level", "head_bits")


@cli.command()
@click.argument("model", required=False)
@click.option("--format", "formats", multiple=True, default=("gguf",), show_default=True,
              help="Artifact format(s): gguf, onnx, or both ('gguf,onnx' or the option twice).")
@click.option("--quant", default=None, help="Comma-separated types of the chosen formats, or 'all'. gguf: f32,f16,"
              "q8_0,q6_k,q5_k_m,q4_k_m,q4_k_s,q4_0,iq4_xs,iq4_nl,q3_k_m,q3_k_s,q2_k, and with an importance matrix "
              "iq3_xxs,q2_k_s (default q8_0,q4_k_m); onnx: fp32,fp16,int8,int8dyn,int4 (default int8,int4).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Artifact folder (default: out/<model name>); bench names the same folder --artifacts.")
@click.option("--embedding-type", default=None,
              help="gguf: type of the tied token embedding / output head, q8_0, q6_k, q5_k, q4_k or f16 (default: llama.cpp's "
              "rule, q6_k or q8_0); onnx int4: the embedding tables, int8 (default), int4 (GatherBlockQuantized), "
              "shared (one 4-bit tensor for embedding and head; needs --head-bits 4) or fp32. With both formats it "
              "applies to the one whose values include it.")
@click.option("--block-size", type=int, default=32, show_default=True, help="onnx int4: quantization block size.")
@click.option("--accuracy-level", type=click.IntRange(0, 4), default=4, show_default=True,
              help="onnx int4: 4 = int8 activations (fastest on CPU), 0 = fp32 activations.")
@click.option("--head-bits", type=click.Choice(["8", "4"]), default="8", show_default=True,
              help="onnx int4: bits of the output head (an int4 head is known to cause repetition).")
@click.option("--threads", type=click.IntRange(0), default=0, help="Threads (default 0: all cores).")
@click.option("--texts", "texts_file", type=click.Path(dir_okay=False), default=None,
              help="Text file (one text per line) the checks compare logits on (default: the demo's held-out texts).")
@click.option("--calibration", default=None,
              help="Calibration texts (a file, one text per line, or 'demo': the demo model's calibration split). "
              "gguf: an importance matrix from the fp16 reference weighs every type's rounding; onnx: int8 and int4 "
              "are rounded with error compensation (GPTQ) on the reference's inputs.")
@click.option("--imatrix", "imatrix_file", type=click.Path(dir_okay=False), default=None,
              help="gguf: use this importance matrix (llama.cpp's GGUF imatrix format, e.g. from llama-imatrix).")
@click.option("--imatrix-out", type=click.Path(dir_okay=False), default=None,
              help="gguf: write the importance matrix computed from --calibration here (for llama-quantize --imatrix).")
@click.option("--calibration-method", type=click.Choice(["gptq", "imatrix"]), default="gptq", show_default=True,
              help="gguf with --calibration: gptq also rounds Q4_K / Q4_0 / Q6_K / Q8_0 matrices with error "
              "compensation on llama.cpp's scales (same format and size); imatrix only weighs llama.cpp's rounding "
              "(onnx is always gptq).")
@click.option("--max-kl", default=None,
              help="With --calibration: quality budgets (comma list): for each, the smallest mixed-precision "
              "artifact of each --format (gguf: per-tensor q3_k..q8_0; onnx: 4- or 8-bit per MatMul; by measured "
              "sensitivity) whose mean KL on held-out calibration texts is at most it, written as <model>-KL<X>.gguf "
              "/ .onnx; fails naming the figure when it cannot be met.")
@click.pass_context
def quantize(ctx: click.Context, model: str | None, formats: tuple[str, ...], quant: str | None, out: str | None,
             embedding_type: str | None, block_size: int, accuracy_level: int, head_bits: str, threads: int,
             texts_file: str | None, calibration: str | None, imatrix_file: str | None, imatrix_out: str | None,
             calibration_method: str, max_kl: str | None) -> None:
    """Convert a GPT-2 folder to checked, quantized artifacts with a manifest."""
    from slmkit.converters.formats import parse_formats, split_quants
    from slmkit.converters.gguf_quantize import DEFAULT_QUANTS, EMBEDDING_TYPES
    from slmkit.converters.onnx_quantize import DEFAULT_PRECISIONS, EMBEDDINGS, Int4Options
    from slmkit.model_folder import open_model_folder

    fmts = parse_formats(formats)
    given = [f"--{n.replace('_', '-')}" for n in ONNX_ONLY
             if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
    if given and "onnx" not in fmts:
        raise SlmkitError(f"{', '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} to --format onnx")
    wanted = (split_quants(quant.split(",")) if quant is not None
              else {"gguf": list(DEFAULT_QUANTS), "onnx": list(DEFAULT_PRECISIONS)})
    stray = [q for f, qs in wanted.items() if f not in fmts for q in qs] if quant not in (None, "all") else []
    if stray:
        raise SlmkitError(f"{', '.join(stray)}: not a type of --format {','.join(fmts)}")
    empty = [f for f in fmts if not wanted[f] and max_kl is None]
    if empty:
        raise SlmkitError(f"--quant {quant} names no {' or '.join(empty)} type")
    embedding = {"gguf": embedding_type if embedding_type in EMBEDDING_TYPES else None,
                 "onnx": embedding_type if embedding_type in EMBEDDINGS else None}
    if embedding_type is not None and not any(embedding[f] for f in fmts):
        raise SlmkitError(f"unknown embedding type {embedding_type!r}; "
                          + "; ".join(f"{f}: {', '.join(EMBEDDING_TYPES if f == 'gguf' else EMBEDDINGS)}" for f in fmts))
    int4 = Int4Options(block_size, accuracy_level, int(head_bits), embedding["onnx"] or "int8")
    if "onnx" in fmts:
        int4.check()
    folder = open_model_folder(model)
    texts = check_texts(texts_file, folder)
    importance = importance_of(fmts, wanted["gguf"], folder, calibration, imatrix_file, imatrix_out)
    if calibration_method != "gptq" and "gguf" not in fmts:
        raise SlmkitError("--calibration-method applies to --format gguf (onnx calibration is always gptq)")
    importance.method = calibration_method
    if max_kl is not None:
        budgets_for(importance, max_kl, folder, calibration_method)
        if quant is None:  # the budgets alone
            wanted = {"gguf": [], "onnx": []}
    dest = Path(out) if out else Path("out") / folder.name
    for fmt in fmts:
        if fmt == "gguf":
            from slmkit.converters.gguf_pipeline import convert_gguf

            manifest = convert_gguf(folder, wanted["gguf"], dest, threads, embedding["gguf"], log=click.echo, texts=texts,
                                    importance=importance)
        else:
            from slmkit.converters.onnx_pipeline import convert_onnx

            manifest = convert_onnx(folder, wanted["onnx"], dest, threads, int4, log=click.echo, texts=texts,
                                    importance=importance)
    click.echo(f"{len(manifest['artifacts'])} artifacts and manifest.json in {dest}")


def importance_of(fmts: list[str], gguf_quants: list[str], folder: "ModelFolder", calibration: str | None,
                  imatrix_file: str | None, imatrix_out: str | None) -> "Importance":
    """The run's importance matrix source, every file and text checked before any work."""
    from slmkit.converters.calibration import load_calibration
    from slmkit.converters.gguf_pipeline import Importance
    from slmkit.converters.gguf_quantize import NEEDS_IMATRIX
    from slmkit.converters.imatrix import read_imatrix
    from slmkit.tokenizer import TextTokenizer

    given = [name for name, v in (("--imatrix", imatrix_file), ("--imatrix-out", imatrix_out)) if v is not None]
    if given and "gguf" not in fmts:
        raise SlmkitError(f"{', '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} to --format gguf")
    if calibration is not None and imatrix_file is not None:
        raise SlmkitError("--calibration and --imatrix both give an importance matrix: pass one")
    if imatrix_out is not None and calibration is None:
        raise SlmkitError("--imatrix-out writes the matrix computed from --calibration: pass --calibration too")
    if calibration is None and imatrix_file is None:
        needy = [q for q in gguf_quants if q in NEEDS_IMATRIX] if "gguf" in fmts else []
        if needy:
            raise SlmkitError(f"{', '.join(needy)} need{'s' if len(needy) == 1 else ''} an importance matrix: pass "
                              "--calibration FILE (or demo) or --imatrix FILE")
        return Importance()
    if calibration is not None:
        from slmkit.demo.calibration import calibration_texts, evaluation_texts

        demo = calibration_texts() if calibration == "demo" else []
        return Importance(calibration=load_calibration(calibration, TextTokenizer.from_folder(folder.path), demo,
                                                       evaluation_texts()),
                          out=Path(imatrix_out) if imatrix_out else None)
    return Importance(matrix=read_imatrix(Path(imatrix_file)), file=Path(imatrix_file))


HELD_OUT_TEXTS = 300  # the last calibration texts (at most a fifth): --max-kl's artifacts are measured on them


def budgets_for(importance: "Importance", max_kl: str, folder: "ModelFolder", method: str) -> None:
    """``--max-kl``'s budgets, checked; the calibration texts split into the matrix's and the held-out ones."""
    from slmkit.tokenizer import TextTokenizer

    try:
        budgets = tuple(float(x) for x in max_kl.split(","))
    except ValueError:
        raise SlmkitError(f"--max-kl takes numbers (comma list), got {max_kl!r}") from None
    if not budgets or any(not 0 < x < 10 for x in budgets):
        raise SlmkitError(f"--max-kl budgets are mean KL values in (0, 10), got {max_kl}")
    if importance.calibration is None or method != "gptq":
        raise SlmkitError("--max-kl measures sensitivity on calibration texts: pass --calibration (method gptq)")
    held = min(HELD_OUT_TEXTS, len(importance.calibration.texts) // 5)
    importance.calibration, importance.held_out = importance.calibration.split(held, TextTokenizer.from_folder(folder.path))
    importance.max_kl = budgets


def check_texts(texts_file: str | None, model: "ModelFolder") -> list[str]:
    """The texts quantize-time checks compare logits on: a user's file, or the demo's held-out texts (refused
    for a model without the demo's control tokens, as bench refuses them)."""
    from slmkit.prompts import has_control_tokens
    from slmkit.tokenizer import TextTokenizer
    from slmkit.workload import CHECK_TEXTS, read_lines

    if texts_file:
        return read_lines(texts_file)[:CHECK_TEXTS]
    if not has_control_tokens(TextTokenizer.from_folder(model.path)):
        raise SlmkitError(f"{model.name} has no demo control tokens, so the demo's held-out texts do not fit it: "
                          "pass --texts FILE (one text per line) for the conversion checks")
    from slmkit.demo.dataset import workload

    return list(workload(CHECK_TEXTS).texts)


@cli.command()
@click.argument("args", nargs=-1, required=True, metavar="[ARTIFACT_OR_MODEL] INTENT")
@click.option("--task", type=click.Choice(["t2i", "search", "recommend"]), default="t2i", show_default=True)
@click.option("--length", type=click.Choice(["short", "medium", "long"]), default="medium", show_default=True)
@click.option("--relevance", type=click.Choice(["high", "mid", "low"]), default="high", show_default=True,
              help="Desired reward bucket (upside-down RL control).")
@click.option("--device", default="cpu", show_default=True, help="Device profile (cpu, mobile, or a user profile).")
@click.option("-n", "--candidates", "n", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Sampled candidates.")
@click.option("--temperature", type=float, default=DECODING["temperature"], show_default=True,
              help="Sampling temperature (seeded, so repeatable); 0 = greedy, which loops on small models.")
@click.option("--top-p", type=float, default=DECODING["top_p"], show_default=True, help="Nucleus sampling (1 = off).")
@click.option("--min-p", type=float, default=DECODING["min_p"], show_default=True,
              help="Drop tokens less likely than this share of the most likely one (0 = off).")
@click.option("--top-k", type=click.IntRange(0), default=0, show_default=True, help="Sample from the k likeliest (0 = off).")
@click.option("--presence-penalty", type=float, default=DECODING["presence_penalty"], show_default=True,
              help="Subtracted from the logit of every token already generated (OpenAI's definition; -2 to 2).")
@click.option("--frequency-penalty", type=float, default=0.0, show_default=True,
              help="Subtracted once per earlier occurrence of a generated token (-2 to 2).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Random seed (candidate i uses seed + i).")
@click.option("--threads", type=click.IntRange(1), default=None, help="Threads (default: the profile's).")
@click.option("--no-repeat-ngram", type=click.IntRange(0, 16), default=DECODING["no_repeat_ngram"], show_default=True,
              help="Never repeat N words / punctuation marks of the generated text, however tokenized (0 = off).")
@click.option("--max-new-tokens", type=int, default=64, show_default=True)
@click.option("--stop", multiple=True, help="End the output where this text begins (repeatable).")
@click.option("--raw", is_flag=True,
              help="Use INTENT as the whole prompt, without the demo task's control tokens (any GPT-2).")
@click.option("--truncate", is_flag=True, help="Drop a too-long prompt's oldest tokens instead of refusing it.")
@click.option("--stream", "do_stream", is_flag=True, help="Print text as it is generated (candidates in turn).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--no-verify", is_flag=True,
              help="Skip the sha256 check against the manifest (an ONNX file then goes through onnx.checker).")
def generate(args: tuple[str, ...], task: str, length: str, relevance: str, device: str, n: int,
             temperature: float, top_p: float, min_p: float, top_k: int, presence_penalty: float,
             frequency_penalty: float, seed: int, threads: int | None, no_repeat_ngram: int,
             max_new_tokens: int, stop: tuple[str, ...], raw: bool, truncate: bool,
             do_stream: bool, as_json: bool, no_verify: bool) -> None:
    """Generate prompts for an intent with a model or artifact (the demo model when omitted); with --raw,
    continue any text with any GPT-2."""
    import time

    from slmkit.loader import load
    from slmkit.prompts import SEP, build_prompt, output_text
    from slmkit.runtimes.sampling import Sampling

    if len(args) > 2:
        raise SlmkitError("expected [ARTIFACT_OR_MODEL] INTENT (quote an intent of several words)")
    target, intent = (args[0], args[1]) if len(args) == 2 else (None, args[0])
    if target is None and looks_like_model(Path(intent)):
        raise SlmkitError(f"missing INTENT after {intent} (usage: slmkit generate [ARTIFACT_OR_MODEL] INTENT)")
    if do_stream and as_json:
        raise SlmkitError("--stream and --json do not go together: --json prints the finished outputs")
    opts = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "min_p": min_p,
            "top_k": top_k, "presence_penalty": presence_penalty, "frequency_penalty": frequency_penalty, "seed": seed,
            "no_repeat_ngram": no_repeat_ngram, "stop": list(stop), "truncate": truncate}
    Sampling(**{k: v for k, v in opts.items() if k in Sampling.__dataclass_fields__})  # bad values: one line
    with load(target, device=device, threads=threads, verify=not no_verify) as rt:
        if rt.info.get("note"):
            click.echo(f"note: {rt.info['note']}", err=True)
        if raw:
            prompt = intent
        elif rt.tokenizer.token_to_id(SEP) is None:
            raise SlmkitError(f"{rt.info.get('file', target)}: this model has no control tokens ({SEP} is not in "
                              "its vocabulary); pass --raw to continue your text as it is")
        else:
            prompt = build_prompt(intent, task, length, relevance)
        t0 = time.perf_counter()
        clean = (lambda text: text) if raw else output_text  # the demo format's output opens with a space
        if do_stream:
            for i in range(n):
                opening = True  # the first non-empty piece carries the output's opening space
                for piece in rt.stream(prompt, **{**opts, "seed": seed + i}):
                    if opening and piece:
                        piece, opening = clean(piece), False
                    click.echo(piece, nl=False)
                click.echo()
            return
        outs = rt.generate(prompt, n=n, **opts)
        outs = [clean(o) for o in ([outs] if isinstance(outs, str) else outs)]
        seconds = time.perf_counter() - t0
        if as_json:
            info = {k: v for k, v in rt.info.items() if k != "tensor_types"}
            click.echo(json.dumps({"intent": None if raw else intent, "task": None if raw else task,
                                   "length": None if raw else length, "relevance": None if raw else relevance,
                                   "prompt": prompt, "outputs": outs, "settings": opts, "seconds": round(seconds, 3),
                                   "runtime": info}, indent=2))
        else:
            for out in outs:
                click.echo(out)


def looks_like_model(path: Path) -> bool:
    """Whether a lone argument names a model or artifact (the INTENT was forgotten), not an intent. A long
    intent is no file name at all: the OS refuses to look it up (ENAMETOOLONG)."""
    try:
        return (path.is_dir() and any((path / f).is_file() for f in ("config.json", "manifest.json"))) or \
            (path.is_file() and path.suffix.lower() in (".gguf", ".onnx"))
    except OSError:
        return False


def bench_workload(texts_file: str | None, quick: bool, prompts_file: str | None = None,
                   template: str | None = None):
    """The demo's held-out examples, sized for the mode; a user's texts file replaces the scored texts, a
    prompts file (through ``template``) the prompts continued and the intents sampled."""
    from dataclasses import replace

    from slmkit.benchmarks.bench import MODES
    from slmkit.demo.dataset import workload
    from slmkit.workload import prompt_pairs, read_lines

    size = MODES["quick" if quick else "full"]
    work = workload(size["texts"], size["greedy"], size["intents"])
    if texts_file:
        texts = read_lines(texts_file)[:size["texts"]]
        work = replace(work, texts=tuple(texts), source=f"{texts_file} ({len(texts)} lines)",
                       demo=work.demo - {"texts"})
    if template is not None and not prompts_file:
        raise SlmkitError("--template needs --prompts FILE (the intents it wraps)")
    if prompts_file:
        pairs = prompt_pairs(read_lines(prompts_file, "prompts"), template)
        work = replace(work, greedy_prompts=tuple(p for p, _ in pairs[:size["greedy"]]),
                       sampled=tuple(pairs[:size["intents"]]), demo=work.demo - {"prompts"},
                       prompts_source=f"{prompts_file} ({len(pairs)} lines)" + (f", template {template!r}" if template else ""))
    return work


@cli.command()
@click.argument("target", required=False, metavar="[MODEL_OR_ARTIFACT_DIR]")
@click.option("--device", default="cpu", show_default=True, help="Device profile (cpu, mobile, or a user profile).")
@click.option("--format", "--formats", "formats", multiple=True, default=("gguf,onnx",), show_default=True,
              help="Artifact format(s) to benchmark: 'gguf,onnx' or the option twice, as quantize (--formats: the old spelling).")
@click.option("--quant", default=None, help="Comma-separated types of either format (e.g. q4_k_m,int4) or 'all'; default: "
              "each format's default types when quantizing, every artifact of an artifact folder.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Report folder (default: <artifact folder>/bench-<device>).")
@click.option("--artifacts", type=click.Path(file_okay=False), default=None,
              help="Where a model's artifacts are found or quantized (default: out/<model name>).")
@click.option("--model", default=None, help="The fp16 reference for an artifact folder (default: its manifest's source).")
@click.option("--quick", is_flag=True, help="Fewer texts and repetitions: under a minute on the demo model, for CI.")
@click.option("--texts", "texts_file", type=click.Path(dir_okay=False), default=None,
              help="Text file (one text per line) scored for drift instead of the demo's held-out texts.")
@click.option("--prompts", "prompts_file", type=click.Path(dir_okay=False), default=None,
              help="Text file (one per line) of prompts continued and sampled instead of the demo's intents.")
@click.option("--template", default=None,
              help="Wrap each --prompts line: a text with {intent}, e.g. '<|task:t2i|>{intent}<|out|>'.")
@click.option("--scorer", default="minilm", show_default=True,
              help="Sentence embeddings for relevance/diversity: minilm, none, or module:Class.")
@click.option("--threads", type=click.IntRange(1), default=None, help="Threads (default: the profile's).")
@click.option("--reps", type=click.IntRange(1, 100), default=None,
              help="Timing repetitions after the warm-up (default 3, --quick 1).")
@click.option("--no-verify", is_flag=True,
              help="Skip the sha256 check of artifacts against the manifest (ONNX files then go through "
                   "onnx.checker when loaded, whose time and passing memory show in load time and peak RSS).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
def bench(target: str | None, device: str, formats: tuple[str, ...], quant: str | None, out: str | None, artifacts: str | None,
          model: str | None, quick: bool, texts_file: str | None, prompts_file: str | None, template: str | None,
          scorer: str, threads: int | None, reps: int | None, no_verify: bool, no_plots: bool) -> None:
    """Memory, latency and quality drift of every artifact against the fp16 reference, in one table."""
    from slmkit.benchmarks.bench import BenchOptions, run_bench
    from slmkit.benchmarks.report import markdown, write_report
    from slmkit.converters.formats import parse_formats

    fmts = tuple(parse_formats(formats))
    from slmkit.demo.calibration import calibration_texts
    from slmkit.files import check_writable_folder

    if out is not None:
        check_writable_folder(Path(out), "report folder")  # before minutes of work
    opts = BenchOptions(device=device, formats=fmts, quants=tuple(quant.split(",")) if quant else None, quick=quick,
                        workload=bench_workload(texts_file, quick, prompts_file, template), scorer=scorer, threads=threads,
                        reps=reps, verify=not no_verify, model=model, demo_calibration=calibration_texts)

    def progress(items, label):
        items = list(items)
        with click.progressbar(items, label=label, file=sys.stderr, show_pos=True,
                               item_show_func=lambda j: (j[2]["label"] if isinstance(j, tuple) else j["label"])
                               if j else None) as bar:
            yield from bar

    report = run_bench(target, opts, Path(artifacts) if artifacts else None, progress=progress,
                       log=lambda m: click.echo(m, err=True))
    dest = Path(out) if out else Path(report["artifacts_dir"]) / f"bench-{device}"
    files = write_report(report, dest)
    if not no_plots:
        from slmkit.benchmarks.plots import write_plots

        files += write_plots(report, dest)
    click.echo(markdown(report))
    click.echo("wrote " + ", ".join(str(f) for f in files))
    failed = [r for r in report["results"] if r.get("error") or r.get("memory", {}).get("within_budget") is False]
    for r in failed:
        why = r["error"] or f"peak RSS {r['memory']['peak_rss_mb']:.0f} MiB over the {device} budget of " \
                            f"{r['memory']['budget_mb']:.0f} MiB"
        click.echo(f"error: {r['label']}: {why}", err=True)
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("report", type=click.Path(dir_okay=True))
@click.option("--baseline", type=click.Path(), default=None, help="An older report: gate on the change too.")
@click.option("--config", "config_file", type=click.Path(), default=None,
              help="Thresholds file (TOML or JSON); default: slmkit-check.toml beside the model or artifacts.")
@click.option("--max-kl", type=float, default=None, help="Max mean KL divergence (default 0.05).")
@click.option("--max-ppl-increase", type=float, default=None, help="Max perplexity increase in % (default 5).")
@click.option("--min-top1", type=float, default=None, help="Min same-top-1 rate, 0-1 (default 0.90).")
@click.option("--max-relevance-drop", type=float, default=None, help="Max relevance drop in % (default 6).")
@click.option("--max-latency-regression", type=float, default=None,
              help="With --baseline: max decode tok/s drop in % (default 10).")
@click.option("--max-kl-increase", type=float, default=None, help="With --baseline: max mean KL increase in % (default 10).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON (exit codes as without it).")
def check(report: str, baseline: str | None, config_file: str | None, as_json: bool, **flags: float | None) -> None:
    """Gate a bench report on quality thresholds: exit 0 pass, 1 a threshold broken, 2 unusable input."""
    from slmkit.benchmarks.check import check_report, find_config, read_config, read_report

    path = Path(report)
    data = read_report(path / "report.json" if path.is_dir() else path)
    old = read_report(Path(baseline) / "report.json" if Path(baseline).is_dir() else Path(baseline)) if baseline else None
    cfg_path = Path(config_file) if config_file else find_config(data)
    config = read_config(cfg_path) if cfg_path else {}
    violations, checked = check_report(data, config, flags, old)
    source = f" (thresholds: {cfg_path})" if cfg_path else ""
    if as_json:
        click.echo(json.dumps({"passed": not violations, "thresholds": str(cfg_path) if cfg_path else None,
                               "checked": checked, "violations": [
                                   {"artifact": v.artifact, "metric": v.metric, "value": v.value, "limit": v.limit}
                                   for v in violations]}, indent=2))
        sys.exit(1 if violations else 0)
    for name in checked:
        bad = [v for v in violations if v.artifact == name]
        click.echo(f"{'FAIL' if bad else 'ok  '} {name}")
        for v in bad:
            click.echo(f"     {v.detail()}")
    for v in violations:
        if v.artifact not in checked:
            click.echo(f"FAIL {v}")
    if violations:
        click.echo(f"{len(violations)} threshold(s) broken in {len({v.artifact for v in violations})} artifact(s)"
                   f"{source}", err=True)
        sys.exit(1)
    click.echo(f"all {len(checked)} artifacts pass{source}")


@cli.command()
@click.argument("target", required=False, metavar="[ARTIFACT_OR_DIR_OR_MODEL]")
@click.option("--device", default="cpu", show_default=True, help="Device profile (cpu, mobile, or a user profile).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", type=int, default=8000, show_default=True, help="Port (0: any free one, printed at start).")
@click.option("--api-key", default=None, help="Require 'Authorization: Bearer KEY' (or set SLMKIT_API_KEY).")
@click.option("--insecure-no-key", is_flag=True, help="Allow a non-loopback --host without an API key.")
@click.option("--parallel", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Requests decoded in turn at once; more wait in the queue.")
@click.option("--max-queue", type=click.IntRange(0), default=16, show_default=True,
              help="Requests that may wait for a slot; beyond it the server answers 503 with Retry-After.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=300.0, show_default=True,
              help="Seconds a request may take, queue included (504 past it).")
@click.option("--threads", type=click.IntRange(1), default=None, help="Threads (default: the profile's).")
@click.option("--no-verify", is_flag=True, help="Skip the artifact's checksum against its manifest.")
def serve(target: str | None, device: str, host: str, port: int, api_key: str | None, insecure_no_key: bool,
          parallel: int, max_queue: int, timeout: float, threads: int | None, no_verify: bool) -> None:
    """Serve a model or artifact over a local OpenAI-compatible HTTP API (the demo model when omitted)."""
    from slmkit.server.run import serve as run_server

    run_server(target, device=device, host=host, port=port, api_key=api_key, insecure_no_key=insecure_no_key,
               parallel=parallel, max_queue=max_queue, timeout=timeout, threads=threads, verify=not no_verify)


def main() -> None:
    cli(prog_name="slmkit")


if __name__ == "__main__":
    sys.exit(main())
