"""ONNX precisions: fp32, fp16 weights, int8 (8-bit MatMulNBits blocks), int8dyn (onnxruntime's dynamic int8,
MatMul and embedding Gather), int4 (MatMulNBits).

int8 and int4 store every MatMul as symmetric blocks of 32 values along its input axis and compute with int8
activations per block (accuracy level 4); the embedding tables are int8 blocks of 32 with a float scale each,
dequantized after the lookup. On the demo int8 measured KL 0.00013 where int8dyn (activations quantized per
tensor, embeddings per tensor) measured 0.00083, at 0.94-0.99x its decode speed (RESULTS.md). With calibration
texts, both are error-compensated (:mod:`slmkit.converters.onnx_gptq`).

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

PRECISIONS = ("fp32", "fp16", "int8", "int8dyn", "int4")
DEFAULT_PRECISIONS = ("int8", "int4")
CALIBRATED = ("int8", "int4")  # what calibration texts change (error compensation of MatMulNBits)
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


def _matmul_nbits(model, bits: int, weights: list[str], block_size: int = 32):
    """The MatMuls whose weight initializer is one of ``weights`` as symmetric ``bits``-bit MatMulNBits blocks of
    ``block_size`` along the input axis, int8 activations per block (accuracy level 4)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    wanted = set(weights)
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    if not any(n.input[1] in wanted for n in matmuls):
        return model
    others = [n.name for n in matmuls if n.input[1] not in wanted]  # onnxruntime 1.32 ignores nodes_to_include here
    q = MatMulNBitsQuantizer(model, bits=bits, block_size=block_size, is_symmetric=True, accuracy_level=4,
                             nodes_to_exclude=others, op_types_to_quantize=("MatMul",), quant_axes=(("MatMul", 0),))
    q.process()
    return q.model.model


def _int8_weights(model, block_size: int = 32):
    """Every MatMul (the head too) as 8-bit symmetric blocks of ``block_size`` along its input axis, computed with
    int8 activations per block (accuracy level 4): float activations (level 0 or 1) have no fast kernel in
    onnxruntime 1.32 (18x slower decode on the demo, RESULTS.md)."""
    return _matmul_nbits(model, 8, [n.input[1] for n in model.graph.node if n.op_type == "MatMul"], block_size)


def _int8_embeddings(model, block: int = 32) -> None:
    """Each float embedding table (every Gather reading an initializer) as int8 blocks of ``block`` values along the
    hidden axis, one float scale per block, dequantized after the lookup (standard ops: Gather, Cast, Mul). Per-tensor
    int8 (quantize_dynamic's Gather) cost the demo most of its 8-bit drift: KL 0.00022 against 0.00010 for fp32
    tables with the same MatMuls (RESULTS.md)."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    for node in [n for n in g.node if n.op_type == "Gather" and n.input[0] in inits]:
        table = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
        if table.ndim != 2 or table.shape[1] % block:
            continue
        rows, width = table.shape
        blocks = table.reshape(rows, width // block, block)
        scale = np.abs(blocks).max(axis=2, keepdims=True) / 127.0
        codes = np.rint(blocks / np.where(scale == 0, 1, scale)).clip(-127, 127).astype(np.int8)
        base = node.input[0]
        g.initializer.remove(inits[base])
        g.initializer.extend([numpy_helper.from_array(codes.reshape(rows, width), f"{base}_int8"),
                              numpy_helper.from_array(scale.astype(np.float32), f"{base}_block_scales"),
                              numpy_helper.from_array(np.array([0, 0, width // block, block], np.int64),
                                                      f"{base}_block_shape"),
                              numpy_helper.from_array(np.array([0, 0, width], np.int64), f"{base}_row_shape")])
        out, ids = node.output[0], node.input[1]
        new = [helper.make_node("Gather", [f"{base}_int8", ids], [f"{base}_codes"], name=f"{base}_GatherCodes"),
               helper.make_node("Gather", [f"{base}_block_scales", ids], [f"{base}_scales"], name=f"{base}_GatherScales"),
               helper.make_node("Cast", [f"{base}_codes"], [f"{base}_codes_f"], name=f"{base}_Cast", to=TensorProto.FLOAT),
               helper.make_node("Reshape", [f"{base}_codes_f", f"{base}_block_shape"], [f"{base}_blocks"],
                                name=f"{base}_Blocks"),
               helper.make_node("Mul", [f"{base}_blocks", f"{base}_scales"], [f"{base}_values"], name=f"{base}_Scale"),
               helper.make_node("Reshape", [f"{base}_values", f"{base}_row_shape"], [out], name=f"{base}_Rows")]
        index = list(g.node).index(node)
        g.node.remove(node)
        for offset, n in enumerate(new):
            g.node.insert(index + offset, n)


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


def write_precision(folder: ModelFolder, precision: str, dest: Path, int4: Int4Options | None = None,
                    hessians: dict[str, np.ndarray] | None = None) -> dict:
    """Build the graph, quantize it to ``precision`` and write ``dest`` atomically; returns its settings.
    ``hessians`` (the calibration inputs' second moments, by GGUF tensor name): error-compensate int8 and int4."""
    from slmkit.converters.onnx_graph import build_gpt2, set_metadata
    from slmkit.converters.onnx_gptq import by_weight_name, compensate_graph, float_matmul_weights

    logging.getLogger("onnxruntime.quantization").setLevel(logging.ERROR)
    if precision not in PRECISIONS:
        raise SlmkitError(f"unknown ONNX precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    settings: dict = {"precision": precision}
    opts = int4 or Int4Options()
    model = build_gpt2(folder, np.float16 if precision == "fp16" else np.float32)
    weights = float_matmul_weights(model) if hessians and precision in ("int8", "int4") else {}
    if precision == "fp16":
        settings["weights"] = "fp16 stored, fp32 compute"
    elif precision == "int8dyn":
        model = _int8(model)
        settings.update(weights="int8 dynamic, per channel", embedding="int8 per tensor")
    elif precision == "int8":
        model = _int8_weights(model)
        settings.update(weights="int8 MatMulNBits, symmetric", block_size=32, accuracy_level=4, embedding="int8 blocks")
    elif precision == "int4":
        opts.check(folder)
        model = _int4(model, opts)
        settings.update(weights="int4 MatMulNBits, symmetric", block_size=opts.block_size,
                        accuracy_level=opts.accuracy_level, head_bits=opts.head_bits,
                        embedding="int8 blocks" if opts.embedding == "int8" else opts.embedding)
    if weights:
        s = folder.shape
        ratios = compensate_graph(model, weights, by_weight_name(hessians, s.n_layer, s.tie_word_embeddings))
        settings["compensation"] = {"matrices": len(ratios),
                                    "output_error_ratio": round(float(np.mean(list(ratios.values()))), 4)}
    if precision == "int8" or (precision == "int4" and opts.embedding == "int8"):
        _int8_embeddings(model)
    elif precision == "int4" and opts.embedding == "shared":
        _share_embedding_with_head(model)
    set_metadata(model, folder, settings)
    settings.update(_save(model, dest))
    return settings
