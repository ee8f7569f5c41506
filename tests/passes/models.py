"""Small ResNet-, MobileNetV2- and BERT-style models built with onnx.helper (seeded random weights).

Used by the layout/pipeline tests and benchmarks/bench_passes.py. They are written the way
exporters write them: Conv + BatchNormalization + activation, explicit Pad before MaxPool,
decomposed LayerNorm / GELU (erf) / attention, so the -O2 passes have something to recognise.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class Builder:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def name(self, hint: str) -> str:
        self.n += 1
        return f"{hint}_{self.n}"

    def const(self, array, hint: str = "c") -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, out: str | None = None, **attrs) -> str:
        out = out or self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"{op_type}_{self.n}", **attrs))
        return out

    def rand(self, *shape, scale: float = 1.0) -> np.ndarray:
        return (self.rng.uniform(-1, 1, shape) * scale).astype(np.float32)

    def conv(self, x, cin, cout, k, stride=1, group=1, bias=False):
        w = self.const(self.rand(cout, cin // group, k, k, scale=(3.0 / (cin // group * k * k)) ** 0.5), "w")
        ins = [x, w] + ([self.const(self.rand(cout, scale=0.1), "b")] if bias else [])
        p = k // 2
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[stride, stride], pads=[p, p, p, p], group=group)

    def bn(self, x, c):
        r = self.rng
        params = [r.uniform(0.5, 1.5, c), r.uniform(-0.1, 0.1, c), r.uniform(-0.1, 0.1, c), r.uniform(0.5, 1.5, c)]
        return self.op("BatchNormalization", [x] + [self.const(p.astype(np.float32), "bn") for p in params], epsilon=1e-5)

    def model(self, name, inputs, outputs) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgec-tests")
        m.ir_version = 8
        onnx.checker.check_model(m, full_check=True)
        return m


def _float(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _classifier(b: Builder, h: str, c: int, classes: int = 10, flatten: bool = True) -> str:
    g = b.op("GlobalAveragePool", [h])
    f = b.op("Flatten", [g], axis=1) if flatten else b.op("Reshape", [g, b.const(np.array([1, c], np.int64), "shape")])
    return b.op("Gemm", [f, b.const(b.rand(classes, c, scale=0.3), "fc_w"), b.const(b.rand(classes, scale=0.1), "fc_b")],
                out="logits", transB=1)


def resnet(seed: int = 0) -> onnx.ModelProto:
    b = Builder(seed)
    h = b.op("Relu", [b.bn(b.conv("x", 3, 8, 3), 8)])
    h = b.op("Pad", [h, b.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")])
    h = b.op("MaxPool", [h], kernel_shape=[3, 3], strides=[2, 2])                       # [1, 8, 16, 16]
    y = b.bn(b.conv(b.op("Relu", [b.bn(b.conv(h, 8, 8, 3), 8)]), 8, 8, 3), 8)
    h = b.op("Relu", [b.op("Add", [y, h])])
    y = b.bn(b.conv(b.op("Relu", [b.bn(b.conv(h, 8, 16, 3, stride=2), 16)]), 16, 16, 3), 16)
    s = b.bn(b.conv(h, 8, 16, 1, stride=2), 16)
    h = b.op("Relu", [b.op("Add", [y, s])])                                             # [1, 16, 8, 8]
    out = _classifier(b, h, 16)
    return b.model("resnet_style", [_float("x", [1, 3, 32, 32])], [_float(out, [1, 10])])


def _inverted_residual(b: Builder, x: str, cin: int, cout: int, expand: int, stride: int) -> str:
    mid = cin * expand
    h = x
    if expand != 1:
        h = b.op("Clip", [b.bn(b.conv(h, cin, mid, 1), mid), b.const(np.float32(0), "lo"), b.const(np.float32(6), "hi")])
    h = b.op("Clip", [b.bn(b.conv(h, mid, mid, 3, stride=stride, group=mid), mid),
                      b.const(np.float32(0), "lo"), b.const(np.float32(6), "hi")])
    h = b.bn(b.conv(h, mid, cout, 1), cout)
    return b.op("Add", [x, h]) if stride == 1 and cin == cout else h


def mobilenet_v2(seed: int = 1) -> onnx.ModelProto:
    b = Builder(seed)
    h = b.op("Clip", [b.bn(b.conv("x", 3, 8, 3, stride=2), 8), b.const(np.float32(0), "lo"), b.const(np.float32(6), "hi")])
    h = _inverted_residual(b, h, 8, 8, 1, 1)                                            # [1, 8, 16, 16]
    h = _inverted_residual(b, h, 8, 12, 6, 2)                                           # [1, 12, 8, 8]
    h = _inverted_residual(b, h, 12, 12, 6, 1)
    h = b.op("Clip", [b.bn(b.conv(h, 12, 32, 1), 32), b.const(np.float32(0), "lo"), b.const(np.float32(6), "hi")])
    out = _classifier(b, h, 32, flatten=False)
    return b.model("mobilenetv2_style", [_float("x", [1, 3, 32, 32])], [_float(out, [1, 10])])


def _layernorm(b: Builder, x: str, d: int) -> str:
    mean = b.op("ReduceMean", [x], axes=[-1])
    diff = b.op("Sub", [x, mean])
    var = b.op("ReduceMean", [b.op("Pow", [diff, b.const(np.float32(2), "two")])], axes=[-1])
    n = b.op("Div", [diff, b.op("Sqrt", [b.op("Add", [var, b.const(np.float32(1e-12), "eps")])])])
    g = b.const((1 + b.rand(d, scale=0.1)).astype(np.float32), "gamma")
    return b.op("Add", [b.op("Mul", [n, g]), b.const(b.rand(d, scale=0.1), "beta")])


def _dense(b: Builder, x: str, din: int, dout: int) -> str:
    w = b.const(b.rand(din, dout, scale=(3.0 / din) ** 0.5), "w")
    return b.op("Add", [b.op("MatMul", [x, w]), b.const(b.rand(dout, scale=0.1), "b")])


def _gelu(b: Builder, x: str) -> str:
    e = b.op("Erf", [b.op("Div", [x, b.const(np.float32(1.4142135), "sqrt2")])])
    return b.op("Mul", [b.op("Mul", [x, b.op("Add", [e, b.const(np.float32(1), "one")])]), b.const(np.float32(0.5), "half")])


def _attention(b: Builder, h: str, mask: str, seq: int, d: int, heads: int) -> str:
    hd = d // heads
    split = b.const(np.array([1, seq, heads, hd], np.int64), "split_shape")
    q = b.op("Transpose", [b.op("Reshape", [_dense(b, h, d, d), split])], perm=[0, 2, 1, 3])
    k = b.op("Transpose", [b.op("Reshape", [_dense(b, h, d, d), split])], perm=[0, 2, 3, 1])
    v = b.op("Transpose", [b.op("Reshape", [_dense(b, h, d, d), split])], perm=[0, 2, 1, 3])
    s = b.op("Div", [b.op("MatMul", [q, k]), b.const(np.float32(hd ** 0.5), "scale")])
    p = b.op("Softmax", [b.op("Add", [s, mask])], axis=-1)
    ctx = b.op("Transpose", [b.op("MatMul", [p, v])], perm=[0, 2, 1, 3])
    ctx = b.op("Reshape", [ctx, b.const(np.array([1, seq, d], np.int64), "merge_shape")])
    return _dense(b, ctx, d, d)


def bert(seed: int = 2, layers: int = 2, seq: int = 8, d: int = 32, heads: int = 4, vocab: int = 16) -> onnx.ModelProto:
    b = Builder(seed)
    emb = b.op("Gather", [b.const(b.rand(vocab, d), "word_emb"), "ids"], axis=0)
    h = _layernorm(b, b.op("Add", [emb, b.const(b.rand(seq, d, scale=0.1), "pos_emb")]), d)
    for _ in range(layers):
        h = _layernorm(b, b.op("Add", [h, _attention(b, h, "mask", seq, d, heads)]), d)
        ff = _dense(b, _gelu(b, _dense(b, h, d, 2 * d)), 2 * d, d)
        h = _layernorm(b, b.op("Add", [h, ff]), d)
    h = b.op("Identity", [h], out="hidden")
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [1, seq])
    return b.model("bert_style", [ids, _float("mask", [1, 1, 1, seq])], [_float(h, [1, seq, d])])


MODELS = {"resnet": resnet, "mobilenetv2": mobilenet_v2, "bert": bert}
