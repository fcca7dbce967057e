"""Importance matrices: how much each input column of every weight matrix matters, for llama.cpp's quantizer.

For a weight ``W`` applied as ``y = W x``, llama.cpp's importance-weighted rounding minimises
``sum_j imp[j] * (W[i, j] - Q[i, j])**2`` per row, with ``imp[j]`` the mean of ``x[j]**2`` over calibration
tokens. slmkit measures ``x`` in the fp16 reference (transformers) on the calibration texts, one text per
sequence from position 0 as the model sees its inputs, for every matrix llama.cpp quantizes: each block's
``attn_qkv``, ``attn_output``, ``ffn_up`` and ``ffn_down``, and the output head. GPT-2 ties its head to the
token embedding, so the head's inputs (the final layer norm's output) are recorded under
``token_embd.weight``, the tensor llama.cpp quantizes for both; stock ``llama-imatrix`` leaves the head out.

The file format is llama.cpp's own (GGUF, ``general.type`` = imatrix; per tensor ``<name>.in_sum2`` F32 [n]
and ``<name>.counts`` F32 [1]; ``imatrix.datasets``, ``imatrix.chunk_count``, ``imatrix.chunk_size``), so a file
written here feeds stock ``llama-quantize --imatrix`` and a file stock ``llama-imatrix`` wrote feeds slmkit.
"""
from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slmkit.errors import SlmkitError
from slmkit.files import atomic_path

IMATRIX_TYPE = "imatrix"
KEY_DATASETS, KEY_CHUNK_COUNT, KEY_CHUNK_SIZE = "imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"
SUM2, COUNTS = ".in_sum2", ".counts"
# the GPT-2 modules whose inputs are recorded (HF names under transformer.h.N), by GGUF name
BLOCK_MODULES = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
# rows of X that enter X^T X: its cost grows with width squared (a 124M GPT-2's ffn_down: 77 GFLOP per 4,096 rows),
# and GPTQ's result settles well before (its paper used 128 x 2,048 tokens for models far wider)
HESSIAN_TOKENS = 32768


@dataclass
class ImportanceMatrix:
    """Per tensor (GGUF name): the sum over calibration tokens of each input column's square, and how many
    tokens were summed; where the texts came from."""
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0
    chunk_size: int = 0
    hessians: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # X^T X (not in the file)

    def means(self) -> dict[str, np.ndarray]:
        """Mean square per input column (what llama.cpp's quantizer weighs rounding errors by)."""
        return {name: (s / max(self.counts[name], 1)).astype(np.float32) for name, s in self.sums.items()}

    def check_against(self, shapes: dict[str, int], source: str) -> None:
        """One clear error when an entry names no tensor of the model or has another row length (an importance
        matrix of another model); ``shapes``: tensor name -> row length of the model's quantized weights."""
        for name, s in self.sums.items():
            if name not in shapes:
                raise SlmkitError(f"{source}: importance matrix entry {name!r} is not a tensor of this model "
                                  "(computed for another model?)")
            if len(s) != shapes[name]:
                raise SlmkitError(f"{source}: importance matrix entry {name!r} has {len(s)} values, the model's "
                                  f"rows have {shapes[name]} (computed for another model?)")
        if not self.sums:
            raise SlmkitError(f"{source}: the importance matrix has no entries")


def gguf_module_names(n_layer: int, tied: bool) -> dict[str, str]:
    """HF module name -> the GGUF weight its input multiplies."""
    import gguf

    names = gguf.TensorNameMap(gguf.MODEL_ARCH.GPT2, n_layer)
    out = {}
    for i in range(n_layer):
        for m in BLOCK_MODULES:
            hf = f"transformer.h.{i}.{m}"
            out[hf] = f"{names.get_name(hf)}.weight"
    out["lm_head"] = "token_embd.weight" if tied else "output.weight"
    return out


def compute_imatrix(reference: Any, texts: Sequence[str], datasets: Sequence[str] = (),
                    hessians: bool = False) -> ImportanceMatrix:
    """Record the inputs of every quantized matrix of a :class:`~slmkit.runtimes.reference.ReferenceRuntime`
    over ``texts`` (each scored alone, from position 0; longer ones cut to the context); ``hessians``: also each
    matrix's full ``X^T X`` (for error compensation, :mod:`slmkit.converters.gptq`)."""
    torch = reference._torch
    model = reference._model
    n_layer = model.config.n_layer
    tied = model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    targets = gguf_module_names(n_layer, tied)
    m = ImportanceMatrix(datasets=list(datasets))
    sums = {name: torch.zeros(0, dtype=torch.float64) for name in targets.values()}
    second: dict[str, Any] = {}
    rows: dict[str, list[Any]] = {name: [] for name in targets.values()}
    hooks = []

    def fold(name: str) -> None:
        """Add the rows gathered so far to X^T X: one float32 product per few thousand rows, summed in float64."""
        if rows[name]:
            x = torch.cat(rows[name])
            xx = (x.T @ x).to(torch.float64)
            second[name] = xx if name not in second else second[name] + xx
            rows[name].clear()

    def record(name: str):
        def hook(_module, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1])
            x64 = x.to(torch.float64)
            s = (x64 * x64).sum(dim=0)
            sums[name] = s if sums[name].numel() == 0 else sums[name] + s
            m.counts[name] = m.counts.get(name, 0) + x.shape[0]
            if hessians and m.counts[name] - x.shape[0] < HESSIAN_TOKENS:
                rows[name].append(x[: HESSIAN_TOKENS - (m.counts[name] - x.shape[0])].to(torch.float32))
                if sum(len(r) for r in rows[name]) >= 4096:
                    fold(name)
        return hook

    for hf_name, gguf_name in targets.items():
        hooks.append(model.get_submodule(hf_name).register_forward_pre_hook(record(gguf_name)))
    longest = 0
    try:
        with torch.inference_mode():
            for text in texts:
                ids = reference.tokenize(text)[: reference.n_ctx]
                if not ids:
                    continue
                longest = max(longest, len(ids))
                model(input_ids=torch.tensor([ids]), use_cache=False)
                m.chunk_count += 1
    finally:
        for h in hooks:
            h.remove()
    for name in rows:
        fold(name)
    if not m.chunk_count:
        raise SlmkitError("no calibration text had any tokens")
    m.sums = {name: s.numpy() for name, s in sums.items() if s.numel()}
    m.hessians = {name: h.numpy() for name, h in second.items()}
    m.chunk_size = longest
    return m


def write_imatrix(m: ImportanceMatrix, dest: Path) -> Path:
    """llama.cpp's GGUF imatrix file (atomically)."""
    import gguf

    with atomic_path(Path(dest)) as tmp:
        w = gguf.GGUFWriter(str(tmp), arch=None)  # no architecture: general.type says what the file is
        w.add_type(IMATRIX_TYPE)
        w.add_array(KEY_DATASETS, list(m.datasets) or ["unknown"])
        w.add_uint32(KEY_CHUNK_COUNT, m.chunk_count)
        w.add_uint32(KEY_CHUNK_SIZE, m.chunk_size)
        for name in sorted(m.sums):
            w.add_tensor(name + SUM2, m.sums[name].astype(np.float32).reshape(1, -1))
            w.add_tensor(name + COUNTS, np.array([[m.counts[name]]], dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return Path(dest)


def read_imatrix(path: Path) -> ImportanceMatrix:
    """An importance matrix from llama.cpp's GGUF imatrix file (stock ``llama-imatrix``'s or slmkit's); one clear
    error for anything else."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise SlmkitError(f"{path}: no such importance matrix file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise SlmkitError(f"{path}: not a GGUF importance matrix (llama.cpp's legacy .dat files are not read; "
                          "write GGUF with llama-imatrix --output-format gguf)")
    try:
        r = gguf.GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001 - gguf raises many kinds on a damaged file
        raise SlmkitError(f"{path}: cannot read the importance matrix ({type(e).__name__}: {e})") from None

    def field_value(key: str) -> Any:
        f = r.fields.get(key)
        return None if f is None else f.contents()

    if field_value("general.type") != IMATRIX_TYPE:
        raise SlmkitError(f"{path}: a GGUF file but not an importance matrix (general.type is "
                          f"{field_value('general.type')!r}, not 'imatrix')")
    tensors = {t.name: np.asarray(t.data, dtype=np.float32) for t in r.tensors}
    m = ImportanceMatrix(datasets=list(field_value(KEY_DATASETS) or []),
                         chunk_count=int(field_value(KEY_CHUNK_COUNT) or 0),
                         chunk_size=int(field_value(KEY_CHUNK_SIZE) or 0))
    for key, data in tensors.items():
        if not key.endswith(SUM2):
            continue
        name = key[: -len(SUM2)]
        counts = tensors.get(name + COUNTS)
        if counts is None or counts.size != 1:
            raise SlmkitError(f"{path}: entry {name!r} has no single count (a mixture-of-experts matrix, or damaged)")
        if not np.isfinite(data).all() or (data < 0).any():
            raise SlmkitError(f"{path}: entry {name!r} holds values that are not finite and non-negative")
        m.sums[name] = data.ravel().astype(np.float64)
        m.counts[name] = int(round(float(counts.ravel()[0])))
    return m


class NativeImatrix:
    """The importance matrix as llama.cpp's ``llama_model_imatrix_data`` array (name, data, size; a null name
    ends it), kept alive as long as this object is."""

    def __init__(self, m: ImportanceMatrix):
        import llama_cpp

        means = m.means()
        self._keep: list[Any] = []
        self.array = (llama_cpp.llama_model_imatrix_data * (len(means) + 1))()
        for i, (name, values) in enumerate(sorted(means.items())):
            data = np.ascontiguousarray(values, dtype=np.float32)
            key = name.encode()
            self._keep += [data, key]
            self.array[i].name = key
            self.array[i].data = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            self.array[i].size = data.size
        self.array[len(means)].name = None

    @property
    def pointer(self) -> Any:
        import llama_cpp

        return ctypes.cast(self.array, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
