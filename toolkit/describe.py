"""What ``slmkit info`` says about a model folder, an artifact folder or one artifact file: a dict (its
``--json``) and the lines it prints. Files are read with slmkit's own parsers, never a native loader."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from slmkit.errors import SlmkitError
from slmkit.manifest import MANIFEST, entry_for, read_manifest


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def describe(target: str | None) -> tuple[dict, list[str]]:
    """Dispatch on what ``target`` is (the demo model when None)."""
    path = Path(target) if target is not None else None
    if path is not None and path.is_dir() and (path / MANIFEST).is_file():
        return artifact_folder(path)
    if path is not None and path.is_file() and path.suffix.lower() == ".gguf":
        return gguf_artifact(path)
    if path is not None and path.is_file() and path.suffix.lower() == ".onnx":
        return onnx_artifact(path)
    if path is not None and path.is_file():
        raise SlmkitError(f"{path}: not a model folder, an artifact folder, a .gguf or a .onnx file")
    return model_folder(target)


def model_folder(target: str | None) -> tuple[dict, list[str]]:
    from slmkit.model_folder import open_model_folder
    from slmkit.tokenizer import TextTokenizer

    folder = open_model_folder(target)
    tok = TextTokenizer.from_folder(folder.path)
    s = folder.shape
    controls = [t for t in tok.added_tokens if t != "<|endoftext|>"]
    base_vocab = tok.vocab_size - len(controls)
    data = {
        "kind": "model", "model": folder.name, "path": str(folder.path.resolve()), "architecture": "gpt2",
        "n_layer": s.n_layer, "n_embd": s.n_embd, "n_head": s.n_head, "n_inner": s.n_inner,
        "n_positions": s.n_positions, "layer_norm_epsilon": s.layer_norm_epsilon,
        "tie_word_embeddings": s.tie_word_embeddings, "parameters": folder.n_params,
        "vocab_size": s.vocab_size, "tokenizer_vocab": tok.vocab_size, "base_vocab": base_vocab,
        "added_tokens": tok.added_tokens, "tokenizer": tok.kind,
        "weights_file": folder.weights.name, "weights_format": folder.weights_format,
        "weights_dtypes": folder.dtypes, "weights_bytes": folder.weights.stat().st_size,
    }
    dtypes = ", ".join(f"{k} x{v}" for k, v in folder.dtypes.items()) or "unknown until loaded (pickle checkpoint)"
    lines = [
        f"{data['model']}  ({data['path']})",
        f"  architecture   GPT-2: {s.n_layer} layers, n_embd {s.n_embd}, {s.n_head} heads, n_inner {s.n_inner}, "
        f"context {s.n_positions}",
        f"  parameters     {folder.n_params:,} ({folder.n_params / 1e6:.1f}M, tied embedding/head: "
        f"{'yes' if s.tie_word_embeddings else 'no'})",
        f"  vocabulary     {s.vocab_size} in config; tokenizer {tok.vocab_size} ({base_vocab} base + {len(controls)} "
        "added control tokens)",
        f"  control tokens {' '.join(controls) or '(none)'}",
        f"  weights        {folder.weights.name}, {_mib(data['weights_bytes'])}, {dtypes}",
        f"  tokenizer      byte-level BPE from {tok.kind}",
    ]
    return data, lines


def _checks(entry: dict | None) -> str:
    checks = (entry or {}).get("checks", {})
    if not checks:
        return "recorded in the folder's manifest" if entry else "none recorded (no manifest lists this file)"
    return ", ".join(f"{name} {'passed' if c.get('passed') else 'FAILED'}" for name, c in checks.items())


def gguf_artifact(path: Path) -> tuple[dict, list[str]]:
    from slmkit.gguf_file import CONTROL, open_gguf

    info = open_gguf(path)
    meta = info.metadata
    tokens = list(meta.get("tokenizer.ggml.tokens", []))
    types = [int(k) for k in meta.get("tokenizer.ggml.token_type", [])]
    controls = [t for t, k in zip(tokens, types) if k == CONTROL and t != "<|endoftext|>"]
    entry = entry_for(path)
    data = {"kind": "gguf", "file": str(path.resolve()), "bytes": path.stat().st_size, "architecture": info.arch,
            "n_layer": info.n_layer, "n_embd": info.n_embd, "context_length": info.context_length,
            "parameters": info.n_params, "bits_per_weight": round(info.bits_per_weight, 3),
            "quant": (entry or {}).get("quant"), "tensor_types": dict(Counter(info.tensor_types.values())),
            "vocab": len(tokens), "control_tokens": controls, "manifest_entry": entry}
    lines = [f"{path.name}  ({data['file']})",
             f"  format         GGUF ({info.arch}): {info.n_layer} layers, n_embd {info.n_embd}, context {info.context_length}",
             f"  size           {_mib(data['bytes'])}, {info.n_params / 1e6:.1f}M parameters, {data['bits_per_weight']:.2f} bits/weight",
             f"  tensor types   {', '.join(f'{k} x{v}' for k, v in sorted(data['tensor_types'].items()))}",
             f"  vocabulary     {len(tokens)} tokens; control tokens {' '.join(controls) or '(none)'}",
             f"  checks         {_checks(entry)}"]
    return data, lines


def onnx_artifact(path: Path) -> tuple[dict, list[str]]:
    from slmkit.onnx_file import inspect_onnx

    info = inspect_onnx(path)
    entry = entry_for(path)
    extra = sum((path.parent / f).stat().st_size for f in info.external if (path.parent / f).is_file())
    data = {"kind": "onnx", "file": str(path.resolve()), "bytes": path.stat().st_size + extra,
            "external_data": sorted(info.external), "quant": (entry or {}).get("quant"),
            "bits_per_weight": (entry or {}).get("bits_per_weight"), "inputs": info.inputs, "outputs": info.outputs,
            "operators": sorted(info.op_types), "domains": sorted(info.domains), "manifest_entry": entry}
    layers = sum(1 for o in info.outputs if o.startswith("present.") and o.endswith(".key"))
    bpw = f", {data['bits_per_weight']:.2f} bits/weight" if data["bits_per_weight"] else ""
    lines = [f"{path.name}  ({data['file']})",
             f"  format         ONNX, {layers} layers with a KV cache; precision {data['quant'] or 'unknown (no manifest)'}",
             f"  size           {_mib(data['bytes'])}{bpw}"
             + (f" (weights in {', '.join(data['external_data'])})" if info.external else ""),
             f"  operators      {', '.join(data['operators'])}",
             f"  inputs         {', '.join(i for i in info.inputs if not i.startswith('past_key_values.'))} + past_key_values",
             f"  checks         {_checks(entry)}"]
    return data, lines


def artifact_folder(path: Path) -> tuple[dict, list[str]]:
    manifest = read_manifest(path)
    source = manifest.get("source", {})
    arts = manifest.get("artifacts", {})
    data = {"kind": "artifacts", "folder": str(path.resolve()), "source": source, "artifacts": arts,
            "slmkit_version": manifest.get("slmkit_version")}
    lines = [f"{path}  (artifacts of {source.get('name', '?')}, sha256 {str(source.get('sha256', '?'))[:12]}...)"]
    for name, e in sorted(arts.items(), key=lambda ne: (ne[1]["format"], -ne[1]["bytes"])):
        bpw = e.get("bits_per_weight")
        present = "" if (path / name).is_file() else "  (missing)"
        lines.append(f"  {name:<34} {e['format']:<5} {e['quant']:<7} {_mib(e['bytes']):>10}"
                     f"{f'  {bpw:.2f} bits/weight' if bpw else ''}{present}")
    return data, lines
