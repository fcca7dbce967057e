"""ONNX precisions: fp32, fp16 weights, int8 (dynamic, MatMul + embedding Gather), int4 (MatMulNBits).

int4 keeps the output head at 8 bits by default (an int4 head is known to cause repetition) and records
``accuracy_level``: 4 computes with int8 activations (fastest on CPU, may flip near-tied greedy tokens),
0 keeps fp32 activations.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slmkit.converters.output import parse_type_list
from slmkit.errors import SlmkitError
from slmkit.files import atomic_path
from slmkit.model_folder import ModelFolder

PRECISIONS = ("fp32", "fp16", "int8", "int4")
DEFAULT_PRECISIONS = ("int8", "int4")
HEAD_NODE = "lm_head_MatMul"
MAX_PROTO = 2_000_000_000  # protobuf's 2 GB limit


@dataclass
class Int4Options:
    block_size: int = 32
    accuracy_level: int = 4
    head_bits: int = 8
    embedding: str = "int8"  # the embedding tables: int8, int4 (GatherBlockQuantized, smallest) or fp32

    def check(self) -> None:
        if self.block_size not in (16, 32, 64, 128, 256):
            raise SlmkitError(f"int4 block size must be 16, 32, 64, 128 or 256, got {self.block_size}")
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise SlmkitError(f"accuracy_level must be 0-4, got {self.accuracy_level}")
        if self.head_bits not in (4, 8):
            raise SlmkitError(f"head bits must be 4 or 8, got {self.head_bits}")
        if self.embedding not in ("int8", "int4", "fp32"):
            raise SlmkitError(f"unknown ONNX embedding type {self.embedding!r}; valid: int8, int4, fp32")


def parse_precisions(spec: str) -> list[str]:
    return parse_type_list(spec, PRECISIONS, "ONNX precision")


def _save(model, dest: Path) -> None:
    import onnx

    if model.ByteSize() > MAX_PROTO:
        raise SlmkitError(f"{dest.name}: models over 2 GB (external data) are not supported yet")
    with atomic_path(dest) as tmp:
        onnx.save(model, str(tmp))


def _int8(model, op_types: tuple[str, ...] = ("MatMul", "Gather")):
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "in.onnx", Path(d) / "out.onnx"
        onnx.save(model, str(src))
        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # quantize_dynamic warns on the root logger
        try:
            quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=list(op_types),
                             per_channel=True, extra_options={"DefaultTensorType": 1})
        finally:
            root.setLevel(level)
        return onnx.load(str(out))


def _int4(model, opts: Int4Options):
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    level = opts.accuracy_level or None
    gather = opts.embedding == "int4"  # embedding rows as 4-bit blocks along the hidden axis
    q = MatMulNBitsQuantizer(model, bits=4, block_size=opts.block_size, is_symmetric=True, accuracy_level=level,
                             nodes_to_exclude=[HEAD_NODE] if opts.head_bits != 4 else [],
                             op_types_to_quantize=("MatMul", "Gather") if gather else ("MatMul",),
                             quant_axes=(("MatMul", 0), ("Gather", 1)))
    q.process()
    model = q.model.model
    if opts.head_bits == 8:
        q = MatMulNBitsQuantizer(model, bits=8, block_size=opts.block_size, is_symmetric=True, accuracy_level=level,
                                 nodes_to_include=[HEAD_NODE])
        q.process()
        model = q.model.model
    return model


def write_precision(folder: ModelFolder, precision: str, dest: Path, int4: Int4Options | None = None) -> dict:
    """Build the graph, quantize it to ``precision`` and write ``dest`` atomically; returns its settings."""
    from slmkit.converters.onnx_graph import build_gpt2, set_metadata

    logging.getLogger("onnxruntime.quantization").setLevel(logging.ERROR)
    if precision not in PRECISIONS:
        raise SlmkitError(f"unknown ONNX precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    settings: dict = {"precision": precision}
    if precision == "fp16":
        model = build_gpt2(folder, np.float16)
        settings["weights"] = "fp16 stored, fp32 compute"
    else:
        model = build_gpt2(folder, np.float32)
    if precision == "int8":
        model = _int8(model)
        settings.update(weights="int8 dynamic, per channel", embedding="int8")
    elif precision == "int4":
        opts = int4 or Int4Options()
        opts.check()
        model = _int4(model, opts)
        if opts.embedding == "int8":
            model = _int8(model, ("Gather",))
        settings.update(weights="int4 MatMulNBits, symmetric", block_size=opts.block_size,
                        accuracy_level=opts.accuracy_level, head_bits=opts.head_bits, embedding=opts.embedding)
    set_metadata(model, folder, settings)
    _save(model, dest)
    return settings
