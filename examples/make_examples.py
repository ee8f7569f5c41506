"""Write the bundled example models deterministically (seeded weights, fixed opset and IR version).

    python examples/make_examples.py [OUT_DIR]

small_cnn.onnx         conv + batchnorm + relu, max pooling, a residual block, global pooling, gemm
tiny_transformer.onnx  one pre-norm transformer encoder block: layernorm, 4-head softmax attention,
                       GELU (erf form, as PyTorch exports it) MLP, residual adds
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET, IR_VERSION = 17, 8


class GraphWriter:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def w(self, name, shape, scale=None, positive=False):
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        a = self.rng.standard_normal(shape) * (scale if scale is not None else 1.0 / np.sqrt(fan_in))
        if positive:
            a = np.abs(a) + 0.5
        self.inits.append(numpy_helper.from_array(a.astype(np.float32), name))
        return name

    def c(self, name, array):
        if any(t.name == name for t in self.inits):
            return name
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, n_out=1, **attrs):
        self.n += 1
        base = f"{op_type.lower()}_{self.n}"
        outs = [base] if n_out == 1 else [f"{base}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=base, **attrs))
        return outs[0] if n_out == 1 else outs

    def model(self, name, inputs, outputs, final_name):
        self.nodes[-1].output[0] = final_name
        g = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgec-examples")
        m.ir_version = IR_VERSION
        onnx.checker.check_model(m, full_check=True)
        return m


def conv_bn_relu(gw, x, cin, cout, k, stride=1, relu=True, tag=""):
    w = gw.w(f"{tag}.conv.w", (cout, cin, k, k))
    y = gw.op("Conv", [x, w], kernel_shape=[k, k], pads=[k // 2] * 4, strides=[stride, stride])
    y = gw.op("BatchNormalization", [y, gw.w(f"{tag}.bn.scale", (cout,), positive=True),
                                     gw.w(f"{tag}.bn.bias", (cout,), 0.1), gw.w(f"{tag}.bn.mean", (cout,), 0.1),
                                     gw.w(f"{tag}.bn.var", (cout,), positive=True)], epsilon=1e-5)
    return gw.op("Relu", [y]) if relu else y


def small_cnn() -> onnx.ModelProto:
    gw = GraphWriter(seed=1)
    x = conv_bn_relu(gw, "input", 3, 16, 3, tag="stem")
    x = gw.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    y = conv_bn_relu(gw, x, 16, 16, 3, tag="block1a")
    y = conv_bn_relu(gw, y, 16, 16, 3, relu=False, tag="block1b")
    x = gw.op("Relu", [gw.op("Add", [x, y])])
    x = conv_bn_relu(gw, x, 16, 32, 3, stride=2, tag="down")
    x = gw.op("GlobalAveragePool", [x])
    x = gw.op("Flatten", [x], axis=1)
    gw.op("Gemm", [x, gw.w("fc.w", (10, 32)), gw.w("fc.b", (10,), 0.1)], transB=1)
    return gw.model("small_cnn", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
                    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], "logits")


def tiny_transformer(seq=16, hidden=64, heads=4, ffn=128) -> onnx.ModelProto:
    gw = GraphWriter(seed=2)
    hd = hidden // heads

    def layernorm(x, tag):
        return gw.op("LayerNormalization", [x, gw.w(f"{tag}.g", (hidden,), positive=True),
                                            gw.w(f"{tag}.b", (hidden,), 0.1)], axis=-1, epsilon=1e-5)

    def linear(x, cin, cout, tag):
        return gw.op("Add", [gw.op("MatMul", [x, gw.w(f"{tag}.w", (cin, cout))]), gw.w(f"{tag}.b", (cout,), 0.1)])

    def split_heads(x):
        x = gw.op("Reshape", [x, gw.c("shape_bshd", np.array([1, seq, heads, hd], np.int64))])
        return gw.op("Transpose", [x], perm=[0, 2, 1, 3])

    h = layernorm("tokens", "ln1")
    q, k, v = (split_heads(linear(h, hidden, hidden, t)) for t in ("q", "k", "v"))
    kt = gw.op("Transpose", [k], perm=[0, 1, 3, 2])
    s = gw.op("Div", [gw.op("MatMul", [q, kt]), gw.c("sqrt_hd", np.array(np.sqrt(hd), np.float32))])
    s = gw.op("Add", [s, "mask"])
    p = gw.op("Softmax", [s], axis=-1)
    a = gw.op("Transpose", [gw.op("MatMul", [p, v])], perm=[0, 2, 1, 3])
    a = gw.op("Reshape", [a, gw.c("shape_bsh", np.array([1, seq, hidden], np.int64))])
    x = gw.op("Add", ["tokens", linear(a, hidden, hidden, "o")])
    h = linear(layernorm(x, "ln2"), hidden, ffn, "fc1")
    erf = gw.op("Erf", [gw.op("Div", [h, gw.c("sqrt2", np.array(np.sqrt(2.0), np.float32))])])
    g = gw.op("Mul", [gw.op("Mul", [h, gw.op("Add", [erf, gw.c("one", np.array(1.0, np.float32))])]),
                      gw.c("half", np.array(0.5, np.float32))])
    gw.op("Add", [x, linear(g, ffn, hidden, "fc2")])
    return gw.model("tiny_transformer",
                    [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [1, seq, hidden]),
                     helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, seq, seq])],
                    [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [1, seq, hidden])], "hidden")


EXAMPLES = {"small_cnn.onnx": small_cnn, "tiny_transformer.onnx": tiny_transformer}


def main(out_dir: str | None = None) -> None:
    out = Path(out_dir) if out_dir else Path(__file__).parent
    out.mkdir(parents=True, exist_ok=True)
    for name, make in EXAMPLES.items():
        onnx.save(make(), out / name)
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
