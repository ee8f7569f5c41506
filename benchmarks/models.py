"""Benchmark models written with onnx.helper: seeded random weights, BatchNorm kept in the CNNs.

    python benchmarks/models.py OUT_DIR        # writes resnet18.onnx, mobilenetv2.onnx, bert.onnx, odd_*.onnx

resnet18     ResNet-18-style, 224x224, BasicBlocks [64,128,256,512]x2, BN after every conv, 1000 classes
mobilenetv2  MobileNetV2-style, 224x224, inverted residuals (expand 6, depthwise 3x3, Clip 0..6), 1000 classes
bert         BERT-style encoder: 4 layers, hidden 256, 4 heads, seq 128, FFN 1024, erf-GELU, LayerNorm
odd_cnn      shapes nobody tuned for: 197x197 input, 3->37->61->... channels, depthwise, residual
odd_bert     2 layers, hidden 200, 5 heads, seq 77, FFN 600
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET, IR_VERSION = 17, 8


class G:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def w(self, shape, scale=None, positive=False):
        self.n += 1
        name = f"w{self.n}"
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        a = self.rng.standard_normal(shape) * (scale if scale is not None else 1.0 / np.sqrt(fan_in))
        if positive:
            a = np.abs(a) * 0.5 + 0.5
        self.inits.append(numpy_helper.from_array(a.astype(np.float32), name))
        return name

    def c(self, array):
        self.n += 1
        name = f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, **attrs):
        self.n += 1
        out = f"{op_type.lower()}_{self.n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def model(self, name, inputs, out_name, out_shape, flops):
        self.nodes[-1].output[0] = out_name
        g = helper.make_graph(self.nodes, name, inputs,
                              [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgec-bench")
        m.ir_version = IR_VERSION
        m.metadata_props.add(key="flops", value=str(int(flops)))
        onnx.checker.check_model(m)
        return m


class Flops:
    def __init__(self):
        self.total = 0

    def conv(self, cin, cout, k, oh, ow, groups=1):
        self.total += 2 * cout * (cin // groups) * k * k * oh * ow

    def mm(self, m, k, n):
        self.total += 2 * m * k * n


def conv_bn(g, fl, x, cin, cout, k, hw, stride=1, groups=1, act="relu"):
    """Conv (no bias) + BatchNorm + activation; returns (output, output spatial size)."""
    pad = k // 2
    out_hw = (hw + 2 * pad - k) // stride + 1
    fl.conv(cin, cout, k, out_hw, out_hw, groups)
    y = g.op("Conv", [x, g.w((cout, cin // groups, k, k))], kernel_shape=[k, k], pads=[pad] * 4,
             strides=[stride, stride], group=groups)
    y = g.op("BatchNormalization", [y, g.w((cout,), positive=True), g.w((cout,), 0.1), g.w((cout,), 0.1),
                                    g.w((cout,), positive=True)], epsilon=1e-5)
    if act == "relu":
        y = g.op("Relu", [y])
    elif act == "relu6":
        y = g.op("Clip", [y, g.c(np.float32(0)), g.c(np.float32(6))])
    return y, out_hw


def head(g, fl, x, c, classes):
    x = g.op("GlobalAveragePool", [x])
    x = g.op("Flatten", [x], axis=1)
    fl.mm(1, c, classes)
    return g.op("Gemm", [x, g.w((classes, c)), g.w((classes,), 0.1)], transB=1)


def _image_input(hw, c=3):
    return [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c, hw, hw])]


def resnet18(hw=224, classes=1000, widths=(64, 128, 256, 512), stem=64, cin=3, seed=0):
    g, fl = G(seed), Flops()
    x, s = conv_bn(g, fl, "input", cin, stem, 7, hw, stride=2)
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    s = (s + 2 - 3) // 2 + 1
    c = stem
    for i, w in enumerate(widths):
        for b in range(2):
            stride = 2 if (b == 0 and i > 0) else 1
            y, s2 = conv_bn(g, fl, x, c, w, 3, s, stride)
            y, _ = conv_bn(g, fl, y, w, w, 3, s2, act=None)
            sc = x
            if stride != 1 or c != w:
                sc, _ = conv_bn(g, fl, x, c, w, 1, s, stride, act=None)
            x = g.op("Relu", [g.op("Add", [y, sc])])
            c, s = w, s2
    head(g, fl, x, c, classes)
    return g.model("resnet18", _image_input(hw, cin), "logits", [1, classes], fl.total)


MBV2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenetv2(hw=224, classes=1000, cfg=MBV2, stem=32, last=1280, cin=3, seed=0):
    g, fl = G(seed), Flops()
    x, s = conv_bn(g, fl, "input", cin, stem, 3, hw, stride=2, act="relu6")
    c = stem
    for t, cout, n, first_stride in cfg:
        for i in range(n):
            stride = first_stride if i == 0 else 1
            hidden = c * t
            y = x
            if t != 1:
                y, _ = conv_bn(g, fl, y, c, hidden, 1, s, act="relu6")
            y, s2 = conv_bn(g, fl, y, hidden, hidden, 3, s, stride, groups=hidden, act="relu6")
            y, _ = conv_bn(g, fl, y, hidden, cout, 1, s2, act=None)
            if stride == 1 and c == cout:
                y = g.op("Add", [x, y])
            x, c, s = y, cout, s2
    x, s = conv_bn(g, fl, x, c, last, 1, s, act="relu6")
    head(g, fl, x, last, classes)
    return g.model("mobilenetv2", _image_input(hw, cin), "logits", [1, classes], fl.total)


def _linear(g, fl, x, m, k, n):
    fl.mm(m, k, n)
    return g.op("Add", [g.op("MatMul", [x, g.w((k, n))]), g.w((n,), 0.02)])


def _layernorm(g, x, d):
    return g.op("LayerNormalization", [x, g.w((d,), positive=True), g.w((d,), 0.02)], axis=-1, epsilon=1e-5)


def bert(layers=4, hidden=256, heads=4, seq=128, ffn=1024, vocab=1000, seed=0):
    g, fl = G(seed), Flops()
    dh = hidden // heads
    x = g.op("Gather", [g.w((vocab, hidden), 0.02), "input_ids"], axis=0)
    x = g.op("Add", [x, g.w((1, seq, hidden), 0.02)])
    x = _layernorm(g, x, hidden)
    split = g.c(np.array([1, seq, heads, dh], np.int64))
    merge = g.c(np.array([1, seq, hidden], np.int64))
    scale = g.c(np.float32(1.0 / np.sqrt(dh)))
    for _ in range(layers):
        q, k, v = (g.op("Reshape", [_linear(g, fl, x, seq, hidden, hidden), split]) for _ in range(3))
        q = g.op("Transpose", [q], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [k], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [v], perm=[0, 2, 1, 3])
        fl.mm(heads * seq, dh, seq)
        fl.mm(heads * seq, seq, dh)
        att = g.op("Softmax", [g.op("Mul", [g.op("MatMul", [q, k]), scale])], axis=-1)
        o = g.op("Transpose", [g.op("MatMul", [att, v])], perm=[0, 2, 1, 3])
        o = _linear(g, fl, g.op("Reshape", [o, merge]), seq, hidden, hidden)
        x = _layernorm(g, g.op("Add", [x, o]), hidden)
        h = _linear(g, fl, x, seq, hidden, ffn)
        erf = g.op("Erf", [g.op("Mul", [h, g.c(np.float32(1 / np.sqrt(2)))])])
        h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [erf, g.c(np.float32(1))])]), g.c(np.float32(0.5))])
        h = _linear(g, fl, h, seq, ffn, hidden)
        x = _layernorm(g, g.op("Add", [x, h]), hidden)
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, seq])]
    m = g.model("bert", inputs, "hidden", [1, seq, hidden], fl.total)
    m.metadata_props.add(key="vocab", value=str(vocab))
    return m


def odd_cnn():
    """197x197 input, 3->37 channels, odd widths everywhere, a depthwise block and residuals."""
    return resnet18(hw=197, classes=101, widths=(37, 61, 83, 130), stem=37, seed=3)


def odd_mobilenet():
    cfg = [(1, 13, 1, 1), (5, 27, 2, 2), (3, 45, 2, 2), (6, 71, 2, 2), (4, 113, 1, 1)]
    return mobilenetv2(hw=197, classes=101, cfg=cfg, stem=37, last=333, seed=4)


def resnet_block(hw=28, c=128, seed=6):
    """One ResNet-18 BasicBlock of stage 2 (28x28, 128 channels): the conv task `edgec tune` is
    measured on in docs/tuning.md."""
    g, fl = G(seed), Flops()
    y, _ = conv_bn(g, fl, "input", c, c, 3, hw)
    y, _ = conv_bn(g, fl, y, c, c, 3, hw, act=None)
    g.op("Relu", [g.op("Add", [y, "input"])])
    return g.model("resnet_block", _image_input(hw, c), "output", [1, c, hw, hw], fl.total)


def odd_bert():
    return bert(layers=2, hidden=200, heads=5, seq=77, ffn=600, seed=5)


MODELS = {"resnet18": resnet18, "mobilenetv2": mobilenetv2, "bert": bert}
ODD_MODELS = {"odd_cnn": odd_cnn, "odd_mobilenet": odd_mobilenet, "odd_bert": odd_bert}
def small_block():
    """A ResNet BasicBlock at 28x28 with 32 channels: kernels of tens of microseconds, where a
    thread pool's fork-join cost shows (benchmarks/bench_parallel_pool.py)."""
    return resnet_block(hw=28, c=32)


EXTRA_MODELS = {"resnet_block": resnet_block, "small_block": small_block}  # select with --models


def flops_of(model: onnx.ModelProto) -> int:
    return int({p.key: p.value for p in model.metadata_props}["flops"])


def sample_inputs(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    meta = {p.key: p.value for p in model.metadata_props}
    out = {}
    for v in model.graph.input:
        shape = [d.dim_value for d in v.type.tensor_type.shape.dim]
        if v.type.tensor_type.elem_type == TensorProto.INT64:
            out[v.name] = rng.integers(0, int(meta.get("vocab", 100)), size=shape).astype(np.int64)
        else:
            out[v.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def write_all(out_dir: Path, names=None) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, fn in {**MODELS, **ODD_MODELS, **EXTRA_MODELS}.items():
        if names and name not in names:
            continue
        p = out_dir / f"{name}.onnx"
        if not p.exists():
            onnx.save(fn(), str(p))
        paths[name] = p
    return paths


if __name__ == "__main__":
    for name, p in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/edgec-bench")).items():
        print(name, p, f"{flops_of(onnx.load(str(p), load_external_data=False)) / 1e9:.2f} GFLOP")
