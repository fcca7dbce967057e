"""Op-level probe: run small int8 graphs through onnxruntime (1 thread) and print their error
against a NumPy reference. Used to find which kernel differs on emulated SVE cores."""
import sys
import numpy as np
import onnx
from onnx import TensorProto as T, helper as h, numpy_helper as nh
import onnxruntime as ort

rng = np.random.default_rng(0)
M, K, N = 7, 512, 1536
x = rng.standard_normal((1, M, K)).astype(np.float32)
w = rng.integers(-127, 128, (K, N)).astype(np.int8)
wzp = rng.integers(-3, 4, (N,)).astype(np.int8)
wscale = (rng.random(N).astype(np.float32) * 0.01 + 0.001)


def run(nodes, inits, outname, opt, kleidiai=True):
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, M, K])],
                     [onnx.ValueInfoProto(name=outname)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.microsoft", 1)])
    so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads = 1
    so.graph_optimization_level = opt
    so.log_severity_level = 3
    if not kleidiai:
        so.add_session_config_entry("mlas.disable_kleidiai", "1")
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


# NumPy reference of DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul
lo, hi = min(x.min(), 0.0), max(x.max(), 0.0)
scale = np.float32((hi - lo) / 255.0)
zp = np.uint8(np.clip(np.round(-lo / scale), 0, 255))
xq = np.clip(np.round(x / scale) + zp, 0, 255).astype(np.uint8)
acc = (xq.astype(np.int32) - int(zp)) @ (w.astype(np.int32) - wzp.astype(np.int32))
ref_int = acc
ref = acc.astype(np.float32) * (scale * wscale)

inits = [nh.from_array(w, "w"), nh.from_array(wzp, "wzp"), nh.from_array(wscale, "ws")]
dq = h.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xzp"])
mmi = h.make_node("MatMulInteger", ["xq", "w", "xzp", "wzp"], ["acc"])
cast = h.make_node("Cast", ["acc"], ["accf"], to=T.FLOAT)
mul1 = h.make_node("Mul", ["xs", "ws"], ["sc"])
mul2 = h.make_node("Mul", ["accf", "sc"], ["y"])
L = ort.GraphOptimizationLevel
res = {}
q = run([dq], [], "xq", L.ORT_DISABLE_ALL)
res["DynamicQuantizeLinear (u8 diff)"] = np.abs(q.astype(int) - xq.astype(int)).max()
a = run([dq, mmi], inits, "acc", L.ORT_DISABLE_ALL)
res["MatMulInteger u8s8 per-col zp (int diff)"] = np.abs(a.astype(np.int64) - ref_int).max()
inits0 = [nh.from_array(w, "w"), nh.from_array(np.zeros(N, np.int8), "wzp"), nh.from_array(wscale, "ws")]
a0 = run([dq, mmi], inits0, "acc", L.ORT_DISABLE_ALL)
ref0 = (xq.astype(np.int32) - int(zp)) @ w.astype(np.int32)
res["MatMulInteger u8s8 zero zp (int diff)"] = np.abs(a0.astype(np.int64) - ref0).max()
for name, lvl in (("unfused", L.ORT_DISABLE_ALL), ("fused (ORT_ENABLE_ALL)", L.ORT_ENABLE_ALL)):
    y = run([dq, mmi, cast, mul1, mul2], inits, "y", lvl)
    res[f"DQ+MatMulInteger+scale {name} (rel diff)"] = np.abs(y - ref).max() / np.abs(ref).max()
# symmetric weights (all-zero zero point): the case ORT routes to KleidiAI's dynamic-quant GEMM on arm64
ref0f = ref0.astype(np.float32) * (scale * wscale)
for kl in (True, False):
    for name, lvl in (("unfused", L.ORT_DISABLE_ALL), ("fused", L.ORT_ENABLE_ALL)):
        y = run([dq, mmi, cast, mul1, mul2], inits0, "y", lvl, kleidiai=kl)
        res[f"symmetric DQ+MatMulInteger {name} kleidiai={'on' if kl else 'off'} (rel diff)"] = (
            np.abs(y - ref0f).max() / np.abs(ref0f).max())
    if kl:  # KleidiAI quantizes A per row (asymmetric int8, "qai8dx"): compare with that reference too
        x2 = x.reshape(M, K)
        rmin, rmax = np.minimum(x2.min(1), 0), np.maximum(x2.max(1), 0)
        rs = (rmax - rmin) / 255.0
        rz = np.clip(np.round(-128 - rmin / rs), -128, 127)
        xa = np.clip(np.round(x2 / rs[:, None]) + rz[:, None], -128, 127) - rz[:, None]
        refrow = (xa @ w.astype(np.float64)) * rs[:, None] * wscale
        res["  same, vs a per-row int8 reference (rel diff)"] = np.abs(y.reshape(M, N) - refrow).max() / np.abs(refrow).max()
for k, v in res.items():
    print(f"{k:50s} {v:.3g}")
