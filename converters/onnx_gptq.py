"""Error-compensating rounding (GPTQ-style) written into onnxruntime's MatMulNBits blocks.

onnxruntime's quantizer rounds each weight to the nearest code of its block's scale. As for GGUF
(:mod:`slmkit.converters.gptq`), the codes are chosen again column by column with each column's rounding error
moved onto the columns not yet rounded, weighted by the calibration inputs' ``H = X^T X``, on the scales the
quantizer chose: the same operator, size and kernels. Symmetric blocks only (no zero-point input): value =
scale * (code - 2^(bits-1)), codes packed low nibble first along the input axis (4 bits) or one per byte (8).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slmkit.converters.gptq import Grid, dequantize, gptq_codes, output_error


def by_weight_name(hessians: dict[str, np.ndarray], n_layer: int, tied: bool) -> dict[str, np.ndarray]:
    """The importance matrix's Hessians (keyed by GGUF tensor name) keyed by the ONNX graph's weight names."""
    from slmkit.converters.imatrix import gguf_module_names

    out = {}
    for module, tensor in gguf_module_names(n_layer, tied).items():
        name = "lm_head" if module == "lm_head" else module.removeprefix("transformer.") + ".weight"
        if tensor in hessians:
            out[name] = hessians[tensor]
    return out


def float_matmul_weights(model) -> dict[str, np.ndarray]:
    """Every MatMul's constant weight [in, out] by initializer name (taken before quantization)."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    return {n.input[1]: numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
            for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits}


def unpack(blob: np.ndarray, bits: int, k: int) -> np.ndarray:
    """[N, blocks, bytes] -> codes [N, k]."""
    n = blob.shape[0]
    if bits == 8:
        return blob.reshape(n, -1)[:, :k].astype(np.int32)
    codes = np.stack([blob & 0xF, blob >> 4], axis=-1).reshape(n, -1)
    return codes[:, :k].astype(np.int32)


def pack(blob: np.ndarray, codes: np.ndarray, bits: int) -> np.ndarray:
    """``blob`` with its first ``codes.shape[1]`` values per row replaced (padding kept)."""
    n, k = codes.shape
    if bits == 8:
        flat = blob.reshape(n, -1).copy()
        flat[:, :k] = codes
        return flat.reshape(blob.shape)
    full = unpack(blob, 4, blob.shape[1] * blob.shape[2] * 2)
    full[:, :k] = codes
    pairs = full.reshape(n, -1, 2).astype(np.uint8)
    return (pairs[..., 0] | (pairs[..., 1] << 4)).reshape(blob.shape)


@dataclass(frozen=True)
class Blocks:
    """A symmetric MatMulNBits node's weight: the MatMul weight's name, bits, input width, packed codes and grid."""
    name: str
    bits: int
    k: int
    blob: np.ndarray
    grid: Grid

    def values(self) -> np.ndarray:
        """The dequantized weight [out, in]."""
        return dequantize(self.grid, unpack(self.blob, self.bits, self.k))


def read_blocks(node, inits: dict) -> Blocks | None:
    """The weight of a symmetric 4- or 8-bit MatMulNBits ``node`` (``inits``: initializers by name); None for other
    nodes (a zero-point input: asymmetric)."""
    from onnx import helper, numpy_helper

    if node.op_type != "MatMulNBits" or (len(node.input) > 3 and node.input[3]):
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    bits, n = attrs["bits"], attrs["N"]
    if bits not in (4, 8):
        return None
    scales = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32).reshape(n, -1)
    return Blocks(node.input[1].removesuffix(f"_Q{bits}"), bits, attrs["K"], numpy_helper.to_array(inits[node.input[1]]),
                  Grid(scales, 2 ** (bits - 1) * scales, attrs["block_size"], 2 ** bits - 1))


def compensate_graph(model, weights: dict[str, np.ndarray], hessians: dict[str, np.ndarray],
                     log: Callable[[str], None] = lambda _: None) -> dict[str, float]:
    """Rewrite, in place, every symmetric MatMulNBits of ``model`` whose float weight (``weights``, by the MatMul's
    initializer name) has a Hessian (``hessians``, same keys) with GPTQ codes on its own scales; a matrix keeps
    the quantizer's codes where they give the smaller output error. Returns weight name -> error after / before."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    ratios: dict[str, float] = {}
    improved = 0
    for node in model.graph.node:
        b = read_blocks(node, inits)
        if b is None or b.name not in weights or b.name not in hessians:
            continue
        weight, h = weights[b.name].T, hessians[b.name]
        codes = gptq_codes(weight, h, b.grid)
        before = output_error(weight, b.values(), h)
        after = output_error(weight, dequantize(b.grid, codes), h)
        ratios[b.name] = after / before if before > 0 else 1.0
        if after < before:
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(pack(b.blob, codes, b.bits), node.input[1]))
            improved += 1
    log(f"error compensation: {improved} of {len(ratios)} matrices improved, output error x"
        f"{np.mean(list(ratios.values())) if ratios else 1:.2f} on average")
    return ratios
