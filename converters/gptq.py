"""Error-compensating rounding (GPTQ-style) written into llama.cpp's own block formats.

llama.cpp's importance-weighted quantizer rounds every weight on its own. GPTQ rounds the input columns of a
matrix one after another and moves each column's rounding error onto the columns not yet rounded, weighted by
the inverse of the calibration inputs' second-moment matrix ``H = X^T X``, so that the layer's *outputs* on
calibration text change least. Here the grid is llama.cpp's: its importance-weighted file fixes every block's
scales (and minimums), and only the 4-bit codes are chosen again, so the result is the same format, the same
size and the same kernels — a file stock llama.cpp reads as any other.

Formats: Q4_K (256-value super-blocks of eight 32-value sub-blocks, ``d * sc * q - dmin * m``), Q6_K (sixteen
16-value sub-blocks, ``d * sc * (q - 32)``), Q4_0 and Q8_0 (32-value blocks, ``d * (q - 8)``, ``d * q``); other
tensors are left as llama.cpp wrote them.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slmkit.errors import SlmkitError
from slmkit.files import atomic_path

BLOCK = 128      # columns updated together (GPTQ's lazy batch)
DAMP = 0.01      # fraction of the mean diagonal added to H


@dataclass(frozen=True)
class Grid:
    """Per row and sub-block: value = scale * code - offset, code in 0..qmax."""
    scale: np.ndarray   # [rows, n_sub] float32
    offset: np.ndarray  # [rows, n_sub] float32
    sub: int            # values per sub-block
    qmax: int


class Q4K:
    """block_q4_K: fp16 d, fp16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of 4-bit codes (256 values)."""
    name, values, size, sub, qmax = "Q4_K", 256, 144, 32, 15

    @staticmethod
    def grid(raw: np.ndarray, rows: int) -> Grid:
        b = raw.reshape(rows, -1, Q4K.size)
        d = b[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
        dmin = b[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
        q = b[..., 4:16].astype(np.int32)
        sc = np.empty(b.shape[:2] + (8,), np.int32)
        mn = np.empty_like(sc)
        sc[..., :4], mn[..., :4] = q[..., 0:4] & 63, q[..., 4:8] & 63
        sc[..., 4:] = (q[..., 8:12] & 0xF) | ((q[..., 0:4] >> 6) << 4)
        mn[..., 4:] = (q[..., 8:12] >> 4) | ((q[..., 4:8] >> 6) << 4)
        scale = (d[..., None] * sc.astype(np.float32)).reshape(rows, -1)
        offset = (dmin[..., None] * mn.astype(np.float32)).reshape(rows, -1)
        return Grid(scale, offset, Q4K.sub, Q4K.qmax)

    @staticmethod
    def codes(raw: np.ndarray) -> np.ndarray:
        rows = raw.shape[0]
        b = raw.reshape(rows, -1, Q4K.size)[..., 16:].reshape(rows, -1, 4, 32)
        return np.stack([b & 0xF, b >> 4], axis=3).reshape(rows, -1).astype(np.int32)

    @staticmethod
    def pack(raw: np.ndarray, codes: np.ndarray) -> np.ndarray:
        rows = codes.shape[0]
        b = raw.reshape(rows, -1, Q4K.size).copy()
        c = codes.reshape(rows, -1, 4, 2, 32).astype(np.uint8)  # per 64 values: 32 low nibbles, then 32 high
        b[..., 16:] = (c[..., 0, :] | (c[..., 1, :] << 4)).reshape(rows, -1, 128)
        return b.reshape(raw.shape)


class Q40:
    """block_q4_0: fp16 d, 16 bytes of 4-bit codes (32 values), value = d * (q - 8)."""
    name, values, size, sub, qmax = "Q4_0", 32, 18, 32, 15

    @staticmethod
    def grid(raw: np.ndarray, rows: int) -> Grid:
        b = raw.reshape(rows, -1, Q40.size)
        d = b[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
        return Grid(d, 8 * d, Q40.sub, Q40.qmax)

    @staticmethod
    def codes(raw: np.ndarray) -> np.ndarray:
        rows = raw.shape[0]
        b = raw.reshape(rows, -1, Q40.size)[..., 2:]
        return np.concatenate([b & 0xF, b >> 4], axis=-1).reshape(rows, -1).astype(np.int32)

    @staticmethod
    def pack(raw: np.ndarray, codes: np.ndarray) -> np.ndarray:
        rows = codes.shape[0]
        b = raw.reshape(rows, -1, Q40.size).copy()
        c = codes.reshape(rows, -1, 2, 16).astype(np.uint8)
        b[..., 2:] = c[..., 0, :] | (c[..., 1, :] << 4)
        return b.reshape(raw.shape)


class Q80:
    """block_q8_0: fp16 d, 32 int8 codes, value = d * q (code = q + 128)."""
    name, values, size, sub, qmax = "Q8_0", 32, 34, 32, 255

    @staticmethod
    def grid(raw: np.ndarray, rows: int) -> Grid:
        d = raw.reshape(rows, -1, Q80.size)[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
        return Grid(d, 128 * d, Q80.sub, Q80.qmax)

    @staticmethod
    def codes(raw: np.ndarray) -> np.ndarray:
        rows = raw.shape[0]
        return raw.reshape(rows, -1, Q80.size)[..., 2:].view(np.int8).reshape(rows, -1).astype(np.int32) + 128

    @staticmethod
    def pack(raw: np.ndarray, codes: np.ndarray) -> np.ndarray:
        rows = codes.shape[0]
        b = raw.reshape(rows, -1, Q80.size).copy()
        b[..., 2:] = (codes.reshape(rows, -1, 32) - 128).astype(np.int8).view(np.uint8)
        return b.reshape(raw.shape)


class Q6K:
    """block_q6_K: 128 bytes of low 4 bits, 64 of high 2 bits, 16 int8 scales, fp16 d (256 values in sixteen
    16-value sub-blocks), value = d * scale * (q - 32)."""
    name, values, size, sub, qmax = "Q6_K", 256, 210, 16, 63

    @staticmethod
    def grid(raw: np.ndarray, rows: int) -> Grid:
        b = raw.reshape(rows, -1, Q6K.size)
        d = b[..., 208:210].copy().view(np.float16)[..., 0].astype(np.float32)
        sc = b[..., 192:208].copy().view(np.int8).astype(np.float32)
        scale = (d[..., None] * sc).reshape(rows, -1)
        return Grid(scale, 32 * scale, Q6K.sub, Q6K.qmax)

    @staticmethod
    def codes(raw: np.ndarray) -> np.ndarray:
        rows = raw.shape[0]
        b = raw.reshape(rows, -1, Q6K.size)
        ql = b[..., :128].reshape(rows, -1, 2, 2, 32).astype(np.int32)   # [half, group & 1, l]
        qh = b[..., 128:192].reshape(rows, -1, 2, 1, 32).astype(np.int32)  # [half, l]
        low = np.concatenate([ql & 15, ql >> 4], axis=3)                  # groups 0, 1 (low nibbles), 2, 3 (high)
        high = (qh >> (2 * np.arange(4)).reshape(1, 1, 1, 4, 1)) & 3
        return (low | (high << 4)).reshape(rows, -1)

    @staticmethod
    def pack(raw: np.ndarray, codes: np.ndarray) -> np.ndarray:
        rows = codes.shape[0]
        b = raw.reshape(rows, -1, Q6K.size).copy()
        c = codes.reshape(rows, -1, 2, 4, 32).astype(np.uint8)
        b[..., :128] = ((c[..., :2, :] & 15) | ((c[..., 2:, :] & 15) << 4)).reshape(rows, -1, 128)
        hi = (c >> 4) << (2 * np.arange(4, dtype=np.uint8)).reshape(1, 1, 1, 4, 1)
        b[..., 128:192] = np.bitwise_or.reduce(hi, axis=3).reshape(rows, -1, 64)
        return b.reshape(raw.shape)


FORMATS = {"Q4_K": Q4K, "Q4_0": Q40, "Q8_0": Q80, "Q6_K": Q6K}


def dequantize(grid: Grid, codes: np.ndarray) -> np.ndarray:
    """Values of ``codes`` [rows, k] on ``grid`` (a grid padded past k, as MatMulNBits pads its last block, is cut)."""
    k = codes.shape[1]
    s = np.repeat(grid.scale, grid.sub, axis=1)[:, :k]
    o = np.repeat(grid.offset, grid.sub, axis=1)[:, :k]
    return s * codes.astype(np.float32) - o


def round_to_grid(w: np.ndarray, s: np.ndarray, o: np.ndarray, qmax: int) -> np.ndarray:
    """Nearest code per value (a zero scale keeps code 0)."""
    safe = np.where(s == 0, 1.0, s)
    return np.where(s == 0, 0, np.clip(np.rint((w + o) / safe), 0, qmax)).astype(np.int32)


def gptq_codes(weight: np.ndarray, hessian: np.ndarray, grid: Grid, damp: float = DAMP) -> np.ndarray:
    """Codes for ``weight`` [rows, cols] on ``grid`` that minimise the output error under ``hessian`` [cols, cols]
    (GPTQ's column-by-column rounding with error feedback through the Cholesky factor of H^-1)."""
    w = weight.astype(np.float64).copy()
    h = hessian.astype(np.float64).copy()
    rows, cols = w.shape
    dead = np.diag(h) <= 0
    h[dead, dead] = 1.0
    h[np.diag_indices(cols)] += damp * float(np.mean(np.diag(h)))
    try:
        hinv = np.linalg.cholesky(np.linalg.inv(h)).T  # upper triangular
    except np.linalg.LinAlgError:
        raise SlmkitError("the calibration inputs' second-moment matrix is not positive definite") from None
    codes = np.empty((rows, cols), np.int32)
    scale = grid.scale.astype(np.float64)
    offset = grid.offset.astype(np.float64)
    for i1 in range(0, cols, BLOCK):
        i2 = min(i1 + BLOCK, cols)
        w1 = w[:, i1:i2].copy()
        err = np.zeros_like(w1)
        h1 = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            s, o = scale[:, col // grid.sub], offset[:, col // grid.sub]
            q = round_to_grid(w1[:, i], s, o, grid.qmax)
            codes[:, col] = q
            e = (w1[:, i] - (s * q - o)) / h1[i, i]
            w1[:, i:] -= np.outer(e, h1[i, i:])
            err[:, i] = e
        w[:, i2:] -= err @ hinv[i1:i2, i2:]
    return codes


def output_error(weight: np.ndarray, values: np.ndarray, hessian: np.ndarray) -> float:
    """tr((W - Q) H (W - Q)^T): the summed squared change of the layer's outputs on the calibration inputs."""
    d = weight.astype(np.float64) - values.astype(np.float64)
    return float(np.sum((d @ hessian) * d))


def compensate(source: Path, quantized: Path, hessians: dict[str, np.ndarray],
               log: Callable[[str], None] = lambda _: None) -> dict[str, float]:
    """Rewrite ``quantized`` (llama.cpp's importance-weighted file of the f16/f32 GGUF ``source``) with GPTQ codes for
    every matrix in one of :data:`FORMATS` that has a Hessian, on llama.cpp's own scales; a matrix keeps llama.cpp's
    codes where they give the smaller output error. Atomic. Returns tensor -> output error after / before."""
    import gguf

    src = {t.name: t for t in gguf.GGUFReader(str(source)).tensors}
    out = gguf.GGUFReader(str(quantized))
    changes: list[tuple[int, bytes]] = []
    ratios = {}
    for t in out.tensors:
        fmt = FORMATS.get(t.tensor_type.name)
        if fmt is None or t.name not in hessians or t.name not in src:
            continue
        raw = np.asarray(t.data)
        rows = raw.shape[0]
        weight = np.asarray(src[t.name].data, dtype=np.float32).reshape(rows, -1)
        grid = fmt.grid(raw, rows)
        h = hessians[t.name]
        codes = gptq_codes(weight, h, grid)
        before = output_error(weight, dequantize(grid, fmt.codes(raw)), h)
        after = output_error(weight, dequantize(grid, codes), h)
        ratios[t.name] = after / before if before > 0 else 1.0
        if after < before:
            changes.append((t.data_offset, fmt.pack(raw, codes).tobytes()))
    if changes:
        with atomic_path(quantized) as tmp:
            shutil.copyfile(quantized, tmp)
            with open(tmp, "r+b") as f:
                for offset, data in changes:
                    f.seek(offset)
                    f.write(data)
    log(f"error compensation: {len(changes)} of {len(ratios)} matrices improved, output error x"
        f"{np.mean(list(ratios.values())) if ratios else 1:.2f} on average")
    return ratios

