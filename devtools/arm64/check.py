"""`make arm64-check`: slmkit's runtime on emulated arm64 cores against the x86 run of the same artifacts.

For the demo model and a small odd-shaped GPT-2 (n_embd 320: K-quants fall back, GPT-2's real vocabulary),
``slmkit quantize`` writes every GGUF type and ONNX precision here on x86; ``probe.py`` then runs the same
``slmkit.load`` / ``Runtime`` code (no torch) on the host and, under qemu user mode, on each emulated CPU
model with the llama.cpp build for its architecture. Per artifact and CPU it compares: tokenization, logits
against x86 (mean KL, same top-1, max |Δlogit|) and against the fp16 transformers reference (KL, beside the
x86 figure), greedy, seeded and n=4 continuations; and it loads damaged files (one clear error each). It
reports the kernels chosen. Report: OUT/report.json and OUT/report.md; exit 1 naming each artifact and CPU
that fails.

    devtools/arm64/setup.sh && BUILD_LLAMA=1 devtools/arm64/setup.sh    # once (make arm64-check does it)
    .venv/bin/python -m devtools.arm64.check [--cpus cortex-a53,max] [--models demo,odd]

Emulated timings are not performance figures and are not reported as such.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("SLMKIT_ARM64_STATE", REPO / "out" / "arm64"))
PROBE = Path(__file__).with_name("probe.py")
# Which llama.cpp build each emulated CPU model runs (setup.sh's LLAMA_ARCHES; one -march per ggml-cpu build)
LLAMA_ARCH = {"cortex-a53": "armv8-a", "cortex-a72": "armv8-a", "neoverse-n1": "armv8-a",
              "max": "armv8.6-a+dotprod+i8mm+sve", "max,sme=off": "armv8.6-a+dotprod+i8mm+sve"}
# Thresholds (x86 vs arm64 of the same file). Where the logits agree (max |dlogit| <= AGREE: float kernels
# that differ only in summation order), every continuation must be identical. Quantized kernels differ more
# (other activation quantization and accumulation: |dlogit| ~0.1-0.25 on this model), so near-ties flip and
# continuations may part at such a step: there the drift must pass slmkit check's limits (mean KL, same top-1)
# and the continuations are reported, not gated.
AGREE = 1e-3
MAX_KL_VS_X86 = 1e-3   # slmkit check's strictest per-artifact limit (the demo's Q8_0)
MIN_TOP1_VS_X86 = 0.92  # slmkit check's default
REF_KL_SLACK = (0.10, 1e-4)  # arm64's KL to the reference may exceed x86's by 10% or 1e-4, whichever is larger
STRINGS = ["a cozy cabin wallpaper", "Ünïcödé – “quotes” and emoji 🚲🌧️", "  leading and   inner  spaces\tand tabs\n",
           "日本語のテキスト", "price: $12.50 (approx.) #tag @user", "don't won't it's"]
ODD_TEXTS = ["The old lighthouse keeper climbed the stairs every evening to light the lamp.",
             "Fresh bread, strong coffee and a quiet morning by the window."]
ODD_PROMPTS = ["The old lighthouse", "A quiet morning"]


def run(cmd: list[str], env: dict | None = None, log: Path | None = None) -> None:
    with open(log, "w") if log else open(os.devnull, "w") as out:
        r = subprocess.run(cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
    if r.returncode:
        tail = log.read_text()[-1500:] if log else ""
        sys.exit(f"arm64-check: {' '.join(map(str, cmd[:3]))} ... failed (exit {r.returncode})\n{tail}")


def build_models(out: Path, models: list[str]) -> dict[str, dict]:
    """Each model's source folder, artifacts (every type, both formats) and evaluation inputs."""
    from slmkit.synthetic import write_random_gpt2

    specs = {}
    for name in models:
        art = out / "artifacts" / name
        if name == "demo":
            from slmkit.demo.dataset import examples
            from slmkit.model_folder import DEMO_MODEL

            source = DEMO_MODEL
            texts = [e.text for e in examples("eval", 4)]
            prompts = [e.prompt for e in examples("eval", 2)]
        else:
            source = out / "models" / "odd"
            if not (source / "config.json").is_file():
                write_random_gpt2(source, n_embd=320, n_layer=2, n_head=5, n_inner=1000, tokenizer="gpt2",
                                  added_tokens=["<|task:t2i|>", "<|out|>"], seed=3)
            texts, prompts = ODD_TEXTS, ODD_PROMPTS
        stamp = art / ".source-sha"
        sha = _folder_sha(source)
        if not (stamp.is_file() and stamp.read_text() == sha):
            shutil.rmtree(art, ignore_errors=True)
            art.mkdir(parents=True)
            print(f"quantizing {name} (every GGUF type and ONNX precision)", flush=True)
            src = [] if name == "demo" else [str(source)]
            run([sys.executable, "-m", "slmkit.cli", "quantize", *src, "--out", str(art), "--format", "gguf,onnx",
                 "--quant", "all", "--texts", str(_texts_file(out, name, texts))], log=out / f"quantize-{name}.log")
            stamp.write_text(sha)
        arts = sorted(p for p in art.iterdir() if p.suffix in (".gguf", ".onnx"))
        specs[name] = {"source": source, "artifacts": arts, "texts": texts, "prompts": prompts, "trained": name == "demo",
                       "hostile": _hostile_copies(out / "hostile" / name, arts)}
    return specs


def _folder_sha(folder: Path) -> str:
    from slmkit.files import sha256_file

    return ",".join(sha256_file(p)[:16] for p in sorted(folder.iterdir()) if p.is_file())


def _texts_file(out: Path, name: str, texts: list[str]) -> Path:
    path = out / f"texts-{name}.txt"
    path.write_text("".join(t.replace("\n", " ") + "\n" for t in texts))
    return path


def _hostile_copies(folder: Path, arts: list[Path]) -> list[dict]:
    """A truncated and a header-corrupted copy of one GGUF and one ONNX artifact (with their tokenizer)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for art in [next(a for a in arts if a.suffix == ".gguf"), next(a for a in arts if a.suffix == ".onnx")]:
        data = art.read_bytes()
        for kind, bad in (("truncated", data[: len(data) // 2]), ("corrupt-header", b"\x00" * 64 + data[64:])):
            d = folder / kind
            d.mkdir(exist_ok=True)
            for extra in art.parent.iterdir():  # tokenizer files beside it, not other artifacts or the manifest
                if extra.is_file() and extra.suffix not in (".gguf", ".onnx", ".data") and extra.name != "manifest.json" \
                        and not (d / extra.name).is_file():
                    shutil.copy(extra, d / extra.name)
            if not (d / art.name).is_file() or (d / art.name).read_bytes() != bad:  # unchanged: the probe cache holds
                (d / art.name).write_bytes(bad)
            out.append({"name": f"{art.name} ({kind})", "path": str(d / art.name)})
    return out


def probe(where: str, spec: dict, name: str, out: Path) -> dict:
    """Run probe.py on the host (``where`` = "x86") or an emulated CPU model; its probe.json."""
    res = out / "results" / where / name
    job = {"artifacts": [{"name": a.name, "path": str(a)} for a in spec["artifacts"]], "texts": spec["texts"],
           "prompts": spec["prompts"], "strings": STRINGS, "hostile": spec["hostile"]}
    res.mkdir(parents=True, exist_ok=True)
    key = _probe_key(where, job)
    if (res / "key.txt").is_file() and (res / "key.txt").read_text() == key and (res / "probe.json").is_file():
        print(f"  {where:12s} {name}: unchanged since the last run (artifacts, probe, llama.cpp build): reused")
        return json.loads((res / "probe.json").read_text())
    (res / "key.txt").unlink(missing_ok=True)
    (res / "job.json").write_text(json.dumps(job, indent=1))
    t0 = time.time()
    if where == "x86":
        run([sys.executable, str(PROBE), str(res / "job.json"), str(res)], log=res / "log.txt")
    else:
        env = {"QEMU_CPU": where, "LLAMA_CPP_LIB_PATH": str(STATE / "llama-lib" / LLAMA_ARCH[where])}
        run([str(STATE / "py-arm64"), str(PROBE), str(res / "job.json"), str(res)], env=env, log=res / "log.txt")
    print(f"  {where:12s} {name}: {len(job['artifacts'])} artifacts, {time.time() - t0:.0f} s wall", flush=True)
    (res / "key.txt").write_text(key)
    return json.loads((res / "probe.json").read_text())


def _probe_key(where: str, job: dict) -> str:
    """What a probe's result depends on: the job, every file it loads, probe.py and the llama.cpp build."""
    import hashlib

    h = hashlib.sha256(json.dumps(job, sort_keys=True).encode() + PROBE.read_bytes() + where.encode())
    files = [Path(a["path"]) for a in job["artifacts"] + job["hostile"]]
    if where != "x86":
        files += sorted((STATE / "llama-lib" / LLAMA_ARCH[where]).glob("*.so"))
    for f in files:
        st = f.stat()
        h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def reference_logits(spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """The fp16 transformers reference's logits of the texts (as slmkit bench's reference), and their ids."""
    import slmkit

    with slmkit.load(spec["source"], threads=os.cpu_count()) as rt:
        ids = [rt.tokenize(t) for t in spec["texts"]]
        return np.concatenate([rt.score(i) for i in ids]), np.concatenate([np.asarray(i) for i in ids])


def drift(a: np.ndarray, b: np.ndarray, ids: np.ndarray, lengths: np.ndarray) -> dict:
    """KL(a || b) and same top-1 over the positions that predict a next token (slmkit's drift metrics, per
    text of the concatenation), and max |dlogit| over all."""
    from slmkit.metrics import summarize_drift, token_drift

    cut = np.cumsum(lengths)[:-1]
    per_text = [token_drift(x, y, list(i)) for x, y, i in zip(np.split(a, cut), np.split(b, cut), np.split(ids, cut))]
    s = summarize_drift(per_text)
    return {"mean_kl": s["mean_kl"], "same_top1": s["same_top1"], "max_abs_dlogit": float(np.abs(a - b).max())}


def compare(name: str, cpu: str, host: dict, emu: dict, out: Path, ref: tuple[np.ndarray, np.ndarray] | None,
            spec_trained: bool) -> list[dict]:
    """One row per artifact and per damaged file. Seeded samples must match only for a trained model: a
    random model's next-token distribution is nearly flat over its whole vocabulary, so a logit change
    of 1e-3 moves the inverse-CDF draw to another token (greedy must match either way)."""
    rows = []
    by_name = {r["name"]: r for r in emu["artifacts"]}
    for h in host["artifacts"]:
        e = by_name.get(h["name"], {"error": "not run"})
        row = {"model": name, "cpu": cpu, "artifact": h["name"], "failures": []}
        if "error" in h or "error" in e:
            row["failures"].append(f"error: x86 {h.get('error', 'ok')}; arm64 {e.get('error', 'ok')}")
            rows.append(row)
            continue
        hz = np.load(out / "results" / "x86" / name / f"{h['name']}.npz")
        ez = np.load(out / "results" / cpu / name / f"{h['name']}.npz")
        vs = drift(hz["logits"], ez["logits"], hz["ids"], hz["lengths"])
        row.update(kernels=e["kernels"], vs_x86=vs,
                   tokens_same=e["tokens"] == h["tokens"] and e.get("llama_tokens") == h.get("llama_tokens"),
                   greedy_same=e["greedy"] == h["greedy"], sampled_same=e["sampled"] == h["sampled"],
                   n4_same=e["n4"] == h["n4"])
        if "llama_tokens" in e and e["llama_tokens"] != e["tokens"]:
            row["failures"].append("llama.cpp's tokenization differs from the tokenizer's on arm64")
        if not row["tokens_same"]:
            row["failures"].append("tokenization differs from x86")
        row["logits_agree"] = vs["max_abs_dlogit"] <= AGREE
        if vs["mean_kl"] > MAX_KL_VS_X86 or vs["same_top1"] < MIN_TOP1_VS_X86:
            row["failures"].append(f"logits differ from x86: mean KL {vs['mean_kl']:.2e}, same top-1 {vs['same_top1']:.3f}")
        elif row["logits_agree"] and not row["greedy_same"]:
            row["failures"].append("greedy continuations differ from x86 although the logits agree")
        elif row["logits_agree"] and spec_trained and not (row["sampled_same"] and row["n4_same"]):
            row["failures"].append("seeded samples differ from x86 although the logits agree")
        if ref is not None and len(ref[0]) == len(hz["logits"]) and (ref[1] == hz["ids"]).all():
            rx, ra = (drift(ref[0], x, hz["ids"], hz["lengths"]) for x in (hz["logits"], ez["logits"]))
            row["vs_reference"] = {"x86_kl": rx["mean_kl"], "arm64_kl": ra["mean_kl"],
                                   "x86_top1": rx["same_top1"], "arm64_top1": ra["same_top1"]}
            if ra["mean_kl"] > rx["mean_kl"] + max(REF_KL_SLACK[0] * rx["mean_kl"], REF_KL_SLACK[1]):
                row["failures"].append(f"drift from the fp16 reference grows on arm64: KL {rx['mean_kl']:.2e} -> {ra['mean_kl']:.2e}")
        rows.append(row)
    for hz in emu["hostile"]:
        row = {"model": name, "cpu": cpu, "artifact": hz["name"], "hostile": hz, "failures": []}
        if hz["outcome"] != "error":
            row["failures"].append(f"damaged file: {hz['outcome']} instead of one clear error")
        rows.append(row)
    return rows


def markdown(report: dict) -> str:
    lines = [f"# arm64 check ({report['when']})", "",
             "slmkit's runtime under qemu user mode (emulated cores) against the x86 run of the same artifacts. "
             "Emulation says nothing about speed; no timings are reported. Where the logits agree (max abs dlogit "
             f"<= {AGREE:g}) every continuation must be identical (seeded samples only for the trained demo model: "
             "the odd model has random weights, a nearly flat distribution where a 1e-3 logit change moves a "
             "sampled token); elsewhere the drift against x86 must pass slmkit check's limits (mean KL <= "
             f"{MAX_KL_VS_X86:g}, same top-1 >= {MIN_TOP1_VS_X86:g}) and the continuations, which part at near-ties, are "
             "reported.", "",
             f"CPU features seen: " + "; ".join(f"**{c}**: {' '.join(f)}" for c, f in report["cpu_features"].items()), "",
             "| model | CPU | artifact | kernels | KL vs x86 | top-1 vs x86 | max abs dlogit | KL to ref x86 / arm64 | tokens | greedy | seeded | n=4 | result |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    yes = lambda b: "same" if b else "differs"  # noqa: E731
    for r in report["rows"]:
        if "hostile" in r:
            h = r["hostile"]
            lines.append(f"| {r['model']} | {r['cpu']} | {r['artifact']} | | | | | | | | | | "
                         f"{'ok: ' + h.get('message', '')[:90] if not r['failures'] else '**' + '; '.join(r['failures']) + '**'} |")
            continue
        if "vs_x86" not in r:
            lines.append(f"| {r['model']} | {r['cpu']} | {r['artifact']} | | | | | | | | | | **{'; '.join(r['failures'])}** |")
            continue
        k, v = r["kernels"], r["vs_x86"]
        kern = (f"{', '.join(k['buffers'])}{' → ' + ', '.join(k['repacked_as']) if k['repacked_as'] else ''}"
                if "buffers" in k else ", ".join(f"{op}×{n}" for op, n in k["matmul_ops"].items()))
        ref = r.get("vs_reference")
        refs = f"{ref['x86_kl']:.2e} / {ref['arm64_kl']:.2e}" if ref else "-"
        lines.append(f"| {r['model']} | {r['cpu']} | {r['artifact']} | {kern} | {v['mean_kl']:.1e} | {v['same_top1']:.3f} | "
                     f"{v['max_abs_dlogit']:.3g} | {refs} | {yes(r['tokens_same'])} | {yes(r['greedy_same'])} | "
                     f"{yes(r['sampled_same'])} | {yes(r['n4_same'])} | {'ok' if not r['failures'] else '**' + '; '.join(r['failures']) + '**'} |")
    lines += ["", f"llama.cpp system info: " + "; ".join(f"**{c}**: `{s}`" for c, s in report["llama_system_info"].items()),
              "", f"Result: {report['failed']} of {len(report['rows'])} rows failed."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", default="cortex-a53,max", help=f"emulated CPU models: {', '.join(LLAMA_ARCH)}")
    ap.add_argument("--models", default="demo,odd")
    ap.add_argument("--out", type=Path, default=STATE / "check")
    args = ap.parse_args(argv)
    cpus, models = args.cpus.split(","), args.models.split(",")
    for c in cpus:
        if c not in LLAMA_ARCH:
            sys.exit(f"arm64-check: unknown CPU model {c!r}; valid: {', '.join(LLAMA_ARCH)}")
        if not (STATE / "llama-lib" / LLAMA_ARCH[c] / "libllama.so").is_file():
            sys.exit(f"arm64-check: no llama.cpp build for {c} in {STATE / 'llama-lib'}: run BUILD_LLAMA=1 devtools/arm64/setup.sh")
    if not (STATE / "py-arm64").is_file():
        sys.exit("arm64-check: no arm64 environment: run devtools/arm64/setup.sh")
    args.out.mkdir(parents=True, exist_ok=True)
    specs = build_models(args.out, models)
    rows, features, sysinfo = [], {}, {}
    for name, spec in specs.items():
        print(f"{name}: {len(spec['artifacts'])} artifacts", flush=True)
        ref = reference_logits(spec)
        host = probe("x86", spec, name, args.out)
        for cpu in cpus:
            emu = probe(cpu, spec, name, args.out)
            features[cpu] = emu["cpu_features"]
            sysinfo.update({cpu: a["kernels"]["system_info"] for a in emu["artifacts"] if "system_info" in a.get("kernels", {})})
            rows += compare(name, cpu, host, emu, args.out, ref, spec["trained"])
    failed = [r for r in rows if r["failures"]]
    report = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": cpus, "models": models,
              "thresholds": {"max_kl_vs_x86": MAX_KL_VS_X86, "min_top1_vs_x86": MIN_TOP1_VS_X86,
                             "reference_kl_slack": REF_KL_SLACK},
              "cpu_features": features, "llama_system_info": sysinfo, "rows": rows, "failed": len(failed)}
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    (args.out / "report.md").write_text(markdown(report))
    print(f"report: {args.out / 'report.md'}")
    for r in failed:
        print(f"FAIL {r['artifact']} on {r['cpu']} ({r['model']}): {'; '.join(r['failures'])}")
    print(f"{len(rows) - len(failed)} of {len(rows)} rows pass")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
