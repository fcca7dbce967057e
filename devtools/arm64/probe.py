"""Run slmkit's runtime over a list of artifacts and record what an arm64 check compares (no torch).

Runs unchanged on the x86 host and under the emulated aarch64 python (``out/arm64/py-arm64``):

    python devtools/arm64/probe.py JOB.json OUTDIR

``JOB.json``: ``{"artifacts": [{"name", "path"}], "texts": [...], "prompts": [...], "strings": [...],
"hostile": [{"name", "path"}]}``. Writes ``OUTDIR/probe.json`` (per artifact: token ids of the strings, greedy,
seeded and n=4 continuations, the kernels chosen; per hostile file: the error) and ``OUTDIR/<name>.npz``
(the texts' logits, concatenated, with their ids).
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

SAMPLED = {"temperature": 0.8, "top_p": 0.95, "seed": 7}
MAX_NEW = 16


def cpu_features() -> list[str]:
    """The CPU feature flags the kernels are chosen by (/proc/cpuinfo's Features or flags line)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("features", "flags")):
                return sorted(line.split(":", 1)[1].split())
    except OSError:
        pass
    return []


def _captured_stderr(fn) -> str:
    """What native code writes to fd 2 while ``fn`` runs."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode("utf-8", "replace")


def gguf_kernels(path: str) -> dict:
    """llama.cpp's CPU features as built and detected, and the weight buffers it loaded (CPU_REPACK: weights
    repacked into the interleaved layout of the ARM / x86 kernels)."""
    import llama_cpp

    log = _captured_stderr(lambda: llama_cpp.Llama(model_path=path, n_ctx=32, n_threads=1, verbose=True).close())
    buffers = sorted({line.split(":", 1)[1].split("model buffer")[0].strip()
                      for line in log.splitlines() if "model buffer size" in line})
    repacked = sorted({line.split("with", 1)[1].strip() for line in log.splitlines()
                       if "repack" in line and " with " in line})
    return {"system_info": llama_cpp.llama_print_system_info().decode().strip(), "buffers": buffers,
            "repacked_as": repacked}


def onnx_kernels(path: str) -> dict:
    """onnxruntime's version and the operators of the optimized graph (MLAS then picks kernels by the CPU
    features: dotprod / i8mm / SVE / SME)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = os.path.join(d, "opt.onnx")
        so.intra_op_num_threads = 1
        ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        ops: dict[str, int] = {}
        for node in onnx.load(so.optimized_model_filepath, load_external_data=False).graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
    heavy = {k: v for k, v in ops.items() if k in ("MatMul", "MatMulNBits", "MatMulInteger", "DynamicQuantizeMatMul",
                                                  "FusedMatMul", "Gemm", "Attention", "MultiHeadAttention",
                                                  "GroupQueryAttention")}
    return {"onnxruntime": ort.__version__, "matmul_ops": heavy}


def probe_artifact(art: dict, job: dict, out: Path) -> dict:
    import slmkit

    rec: dict = {"name": art["name"], "path": art["path"]}
    t0 = time.perf_counter()
    with slmkit.load(art["path"], threads=1) as rt:
        rec["load_s"] = time.perf_counter() - t0
        rec["info"] = {k: v for k, v in rt.info.items() if k in ("backend", "format", "quant", "precision", "tensor_types")}
        rec["tokens"] = [rt.tokenize(s) for s in job["strings"]]
        if hasattr(rt, "llama_tokenize"):
            rec["llama_tokens"] = [rt.llama_tokenize(s) for s in job["strings"]]
        ids = [rt.tokenize(t) for t in job["texts"]]
        logits = [rt.score(i) for i in ids]
        np.savez_compressed(out / f"{art['name']}.npz", logits=np.concatenate(logits),
                            ids=np.concatenate([np.asarray(i) for i in ids]),
                            lengths=np.array([len(i) for i in ids]))
        rec["greedy"] = [rt.generate(p, max_new_tokens=MAX_NEW) for p in job["prompts"]]
        rec["sampled"] = [rt.generate(p, max_new_tokens=MAX_NEW, **SAMPLED) for p in job["prompts"]]
        rec["n4"] = rt.generate(job["prompts"][0], n=4, max_new_tokens=12, **SAMPLED)
    rec["kernels"] = gguf_kernels(art["path"]) if art["path"].endswith(".gguf") else onnx_kernels(art["path"])
    rec["seconds"] = time.perf_counter() - t0
    return rec


def probe_hostile(item: dict) -> dict:
    """A damaged file must be one clear SlmkitError (a one-line message), never a crash."""
    import slmkit
    from slmkit.errors import SlmkitError

    try:
        slmkit.load(item["path"], threads=1).close()
        return {"name": item["name"], "outcome": "loaded"}
    except SlmkitError as e:
        msg = str(e)
        return {"name": item["name"], "outcome": "error" if "\n" not in msg else "multi-line error", "message": msg}
    except Exception as e:  # noqa: BLE001 - what the check must catch
        return {"name": item["name"], "outcome": f"{type(e).__name__}", "message": str(e)[:300]}


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    result = {"machine": platform.machine(), "cpu_features": cpu_features(), "artifacts": [], "hostile": []}
    for art in job["artifacts"]:
        try:
            result["artifacts"].append(probe_artifact(art, job, out))
        except Exception as e:  # noqa: BLE001 - recorded and reported per artifact
            result["artifacts"].append({"name": art["name"], "path": art["path"],
                                        "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]})
        print(f"{platform.machine()} {art['name']} done", flush=True)
    result["hostile"] = [probe_hostile(h) for h in job.get("hostile", [])]
    (out / "probe.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
