"""ONNX precisions: fp32, fp16 weights, int8 (dynamic, MatMul + embedding Gather), int8w (8-bit MatMulNBits blocks,
activations quantized per 32-value block as it computes: 3.5x closer to the reference than int8 at 0.93x its
decode speed on the demo), int4 (MatMulNBits).

int4 keeps the output head at 8 bits by default (an int4 head is known to cause repetition) and records
``accuracy_level``: 4 computes with int8 activations (fastest on CPU, may flip near-tied greedy tokens),
0 keeps fp32 activations.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slmkit.errors import SlmkitError
from slmkit.files import TMP_PREFIX, atomic_path, sha256_file
from slmkit.model_folder import ModelFolder

PRECISIONS = ("fp32", "fp16", "int8", "int8w", "int4")
DEFAULT_PRECISIONS = ("int8", "int4")
EMBEDDINGS = ("int8", "int4", "shared", "fp32")
MAX_PROTO = 2_000_000_000  # protobuf's 2 GB limit: larger models keep their weights in DIR/<file>.data


@dataclass
class Int4Options:
    block_size: int = 32
    accuracy_level: int = 4
    head_bits: int = 8
    # the embedding tables: int8; int4 (GatherBlockQuantized); shared (the token embedding reads the 4-bit
    # output head's own tensor, stored once: smallest, needs head_bits 4); fp32
    embedding: str = "int8"

    def check(self, folder: ModelFolder | None = None) -> None:
        """One clear error for settings that cannot work (on ``folder``'s model, when given)."""
        if folder is not None and self.embedding == "shared" and not folder.shape.tie_word_embeddings:
            raise SlmkitError(f"{folder.path}: --embedding-type shared needs a tied embedding and head; this "
                              "model's lm_head is its own (tie_word_embeddings false)")
        if self.block_size not in (16, 32, 64, 128, 256):
            raise SlmkitError(f"int4 block size must be 16, 32, 64, 128 or 256, got {self.block_size}")
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise SlmkitError(f"accuracy_level must be 0-4, got {self.accuracy_level}")
        if self.head_bits not in (4, 8):
            raise SlmkitError(f"head bits must be 4 or 8, got {self.head_bits}")
        if self.embedding not in EMBEDDINGS:
            raise SlmkitError(f"unknown ONNX embedding type {self.embedding!r}; valid: {', '.join(EMBEDDINGS)}")
        if self.embedding == "shared" and self.head_bits != 4:
            raise SlmkitError("a shared embedding/head tensor needs a 4-bit head (--head-bits 4)")


def is_large(model) -> bool:
    """Whether a model must keep its weights as external data (protobuf cannot hold 2 GB)."""
    return model.ByteSize() > MAX_PROTO


def _save(model, dest: Path) -> dict:
    """Write ``dest`` atomically, its weights in ``dest.data`` when the model passes 2 GB; returns the
    manifest fields of the external data file (none for a single file)."""
    import onnx

    if not is_large(model):
        with atomic_path(dest) as tmp:
            onnx.save(model, str(tmp))
        return {}
    data = dest.with_name(dest.name + ".data")
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX, dir=dest.parent) as d:
        tmp_model = Path(d) / dest.name
        try:
            onnx.save(model, str(tmp_model), save_as_external_data=True, all_tensors_to_one_file=True,
                      location=data.name, size_threshold=1024)
            os.replace(Path(d) / data.name, data)  # the data first: the model file names it
            os.replace(tmp_model, dest)
        except OSError as e:
            raise SlmkitError(f"could not write {dest}: {e.strerror or e}") from None
    return {"external_data": data.name, "external_data_bytes": data.stat().st_size,
            "external_data_sha256": sha256_file(data)}


def _int8(model, op_types: tuple[str, ...] = ("MatMul", "Gather")):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    large = is_large(model)
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "in.onnx", Path(d) / "out.onnx"
        onnx.save(model, str(src), save_as_external_data=large, location="in.onnx.data")
        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # quantize_dynamic warns on the root logger
        try:
            quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=list(op_types),
                             per_channel=True, extra_options={"DefaultTensorType": 1}, use_external_data_format=large)
        finally:
            root.setLevel(level)
        return onnx.load(str(out))


def _int4(model, opts: Int4Options):
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    from slmkit.converters.onnx_graph import HEAD_NODE

    level = opts.accuracy_level or None
    gather = opts.embedding in ("int4", "shared")  # embedding rows as 4-bit blocks along the hidden axis
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


def _int8_weights(model, block_size: int = 32):
    """Every MatMul (the head too) as 8-bit symmetric blocks of ``block_size`` along its input axis, computed with
    int8 activations per block (accuracy level 4). With float activations (level 0 or 1) the demo's KL fell further
    (0.00014 against 0.00024) but onnxruntime 1.32 has no fast kernel for it: 18x slower decode (RESULTS.md)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    q = MatMulNBitsQuantizer(model, bits=8, block_size=block_size, is_symmetric=True, accuracy_level=4,
                             op_types_to_quantize=("MatMul",), quant_axes=(("MatMul", 0),))
    q.process()
    return q.model.model


def _share_embedding_with_head(model) -> None:
    """Make the token-embedding GatherBlockQuantized read the 4-bit head's packed tensor (stored once).

    MatMulNBits stores the head [vocab, hidden] as B [vocab, blocks, block/2] with symmetric blocks along
    the hidden axis (implicit zero point 8): byte for byte the [vocab, hidden/2] layout that
    GatherBlockQuantized reads with quantize_axis 1. Only a Reshape sits between them.
    """
    from onnx import helper, numpy_helper

    g = model.graph
    head = next(n for n in g.node if n.op_type == "MatMulNBits" and n.output[0] == "logits")
    attrs = {a.name: helper.get_attribute_value(a) for a in head.attribute}
    k, n, block = attrs["K"], attrs["N"], attrs["block_size"]
    tok = next(n_ for n_ in g.node if n_.op_type == "GatherBlockQuantized" and "input_ids" in n_.input)
    old = set(tok.input) - {"input_ids"}
    blocks = -(-k // block)
    g.initializer.extend([numpy_helper.from_array(np.array([n, blocks * block // 2], np.int64), "shared_data_shape"),
                          numpy_helper.from_array(np.array([n, blocks], np.int64), "shared_scale_shape"),
                          numpy_helper.from_array(np.full((n, (blocks + 1) // 2), 0x88, np.uint8), "shared_zero_points")])
    data = helper.make_node("Reshape", [head.input[1], "shared_data_shape"], ["shared_embedding_data"], name="SharedData")
    scales = helper.make_node("Reshape", [head.input[2], "shared_scale_shape"], ["shared_embedding_scales"],
                              name="SharedScales")
    tok_attrs = {a.name: helper.get_attribute_value(a) for a in tok.attribute}
    gather = helper.make_node("GatherBlockQuantized", ["shared_embedding_data", "input_ids", "shared_embedding_scales",
                                                      "shared_zero_points"], list(tok.output), name=tok.name,
                              domain="com.microsoft", gather_axis=0, quantize_axis=1, block_size=block,
                              bits=tok_attrs.get("bits", 4))
    index = list(g.node).index(tok)
    g.node.remove(tok)
    for offset, node in enumerate((data, scales, gather)):
        g.node.insert(index + offset, node)
    used = {i for node in g.node for i in node.input}
    for init in [t for t in g.initializer if t.name in old and t.name not in used]:
        g.initializer.remove(init)


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
    elif precision == "int8w":
        model = _int8(_int8_weights(model), ("Gather",))
        settings.update(weights="int8 MatMulNBits, symmetric", block_size=32, accuracy_level=4, embedding="int8")
    elif precision == "int4":
        opts = int4 or Int4Options()
        opts.check(folder)
        model = _int4(model, opts)
        if opts.embedding == "int8":
            model = _int8(model, ("Gather",))
        elif opts.embedding == "shared":
            _share_embedding_with_head(model)
        settings.update(weights="int4 MatMulNBits, symmetric", block_size=opts.block_size,
                        accuracy_level=opts.accuracy_level, head_bits=opts.head_bits, embedding=opts.embedding)
    set_metadata(model, folder, settings)
    settings.update(_save(model, dest))
    return settings
