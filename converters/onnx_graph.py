"""Build a GPT-2 ONNX graph with a KV cache directly from the weights (no torch export).

Inputs: ``input_ids`` [batch, seq], ``attention_mask`` [batch, past+seq], ``position_ids``
[batch, seq], ``past_key_values.{i}.key|value`` [batch, heads, past, head_dim]. Outputs: ``logits``
[batch, seq, vocab] and ``present.{i}.key|value``. The names follow onnxruntime-genai's decoder
convention. HF Conv1D weights are already [in, out], the layout MatMul wants; the tied head gets its
own transposed initializer so quantizers can treat it apart from the embedding Gather.
"""
from __future__ import annotations

import numpy as np

from slmkit.model_folder import ModelFolder
from slmkit.weights import load_weights

OPSET = 20
NEG = -1e9  # additive mask value for disallowed positions


class _Graph:
    """A tiny helper that names nodes and collects initializers."""

    def __init__(self, weight_dtype: type):
        self.nodes: list = []
        self.inits: list = []
        self.weight_dtype = weight_dtype
        self._n = 0

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, domain: str = "", **attrs) -> list[str]:
        from onnx import helper

        self._n += 1
        outs = [f"{op_type.lower()}_{self._n}_{k}" for k in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=f"{op_type}_{self._n}", domain=domain, **attrs))
        return outs

    def one(self, op_type: str, inputs: list[str], **attrs) -> str:
        return self.op(op_type, inputs, **attrs)[0]

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def weight(self, name: str, value: np.ndarray) -> str:
        """A float weight stored in the graph's weight dtype, used as float32."""
        if self.weight_dtype == np.float32:
            return self.const(name, value.astype(np.float32))
        stored = self.const(name + "_fp16", value.astype(np.float16))
        from onnx import TensorProto

        return self.one("Cast", [stored], to=TensorProto.FLOAT)


HEAD_NODE = "lm_head_MatMul"  # the output head's MatMul: int4 quantization treats it apart


def build_gpt2(folder: ModelFolder, weight_dtype: type = np.float32):
    """The ModelProto of a GPT-2 with KV cache (fp32 compute; fp32 or fp16 stored weights)."""
    from onnx import TensorProto, helper

    s = folder.shape
    heads, head_dim = s.n_head, s.n_embd // s.n_head
    w = load_weights(folder)
    g = _Graph(weight_dtype)
    ints = lambda name, vals: g.const(name, np.array(vals, dtype=np.int64))  # noqa: E731

    # embeddings
    tok = g.one("Gather", [g.weight("wte", w["wte.weight"]), "input_ids"])
    pos = g.one("Gather", [g.weight("wpe", w["wpe.weight"]), "position_ids"])
    x = g.one("Add", [tok, pos])

    # additive attention bias [batch, 1, seq, total]: causal and padding
    seq = g.one("Gather", [g.one("Shape", ["input_ids"]), ints("one_i", 1)], axis=0)
    total = g.one("Gather", [g.one("Shape", ["attention_mask"]), ints("one_i2", 1)], axis=0)
    past = g.one("Sub", [total, seq])
    zero = ints("zero_i", 0)
    step = ints("step_i", 1)
    rows = g.one("Unsqueeze", [g.one("Add", [g.one("Range", [zero, seq, step]), past]), ints("ax1", [1])])
    cols = g.one("Unsqueeze", [g.one("Range", [zero, total, step]), ints("ax0", [0])])
    causal = g.one("LessOrEqual", [cols, rows])  # [seq, total]
    pad = g.one("Unsqueeze", [g.one("Cast", ["attention_mask"], to=TensorProto.BOOL), ints("ax12", [1, 2])])
    allowed = g.one("And", [causal, pad])  # [batch, 1, seq, total]
    bias = g.one("Where", [allowed, g.const("zero_f", np.array(0.0, np.float32)),
                           g.const("neg_f", np.array(NEG, np.float32))])
    split_shape = ints("split_shape", [0, 0, heads, head_dim])
    merge_shape = ints("merge_shape", [0, 0, s.n_embd])
    scale = g.const("scale", np.array(1.0 / np.sqrt(head_dim), np.float32))

    def ln(x: str, prefix: str) -> str:
        return g.one("LayerNormalization", [x, g.weight(prefix + ".weight", w[prefix + ".weight"]),
                                            g.weight(prefix + ".bias", w[prefix + ".bias"])],
                     axis=-1, epsilon=s.layer_norm_epsilon)

    def linear(x: str, prefix: str) -> str:
        return g.one("Add", [g.one("MatMul", [x, g.weight(prefix + ".weight", w[prefix + ".weight"])]),
                             g.weight(prefix + ".bias", w[prefix + ".bias"])])

    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total_seq"]),
              helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", s.vocab_size])]
    for i in range(s.n_layer):
        p = f"h.{i}"
        q, k, v = g.op("Split", [linear(ln(x, p + ".ln_1"), p + ".attn.c_attn")], n_out=3, axis=-1, num_outputs=3)
        q, k, v = (g.one("Transpose", [g.one("Reshape", [t, split_shape])], perm=[0, 2, 1, 3]) for t in (q, k, v))
        cache = []
        for kind, new in (("key", k), ("value", v)):
            name = f"past_key_values.{i}.{kind}"
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", heads, "past_seq", head_dim]))
            present = f"present.{i}.{kind}"
            g.nodes.append(helper.make_node("Concat", [name, new], [present], name=f"Concat_{present}", axis=2))
            outputs.append(helper.make_tensor_value_info(present, TensorProto.FLOAT, ["batch", heads, "total_seq", head_dim]))
            cache.append(present)
        scores = g.one("Add", [g.one("Mul", [g.one("MatMul", [q, g.one("Transpose", [cache[0]], perm=[0, 1, 3, 2])]),
                                             scale]), bias])
        attn = g.one("MatMul", [g.one("Softmax", [scores], axis=-1), cache[1]])
        attn = g.one("Reshape", [g.one("Transpose", [attn], perm=[0, 2, 1, 3]), merge_shape])
        x = g.one("Add", [x, linear(attn, p + ".attn.c_proj")])
        hidden = g.one("Gelu", [linear(ln(x, p + ".ln_2"), p + ".mlp.c_fc")], approximate="tanh")
        x = g.one("Add", [x, linear(hidden, p + ".mlp.c_proj")])
    x = ln(x, "ln_f")
    head = g.weight("lm_head", w.get("lm_head.weight", w["wte.weight"]).T)  # untied: its own head
    g.nodes.append(helper.make_node("MatMul", [x, head], ["logits"], name=HEAD_NODE))

    graph = helper.make_graph(g.nodes, "gpt2", inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="slmkit")
    model.ir_version = 10
    return model


def set_metadata(model, folder: ModelFolder, settings: dict) -> None:
    """Record the shape and quantization settings the runtime reads back (custom metadata)."""
    import json

    from onnx import helper

    s = folder.shape
    meta = {"slmkit.n_positions": s.n_positions, "slmkit.n_layer": s.n_layer, "slmkit.n_head": s.n_head,
            "slmkit.head_dim": s.n_embd // s.n_head, "slmkit.vocab_size": s.vocab_size,
            "slmkit.settings": json.dumps(settings)}
    del model.metadata_props[:]
    helper.set_model_props(model, {k: str(v) for k, v in meta.items()})
