"""Seeded mutators for ONNX models: raw bytes and graph structure."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto

SEEDS_TEXT = {
    "conv": """<ir_version: 8, opset_import: ["" : 17]>
        g (float[1, 2, 6, 6] x) => (float[1, 3, 3, 3] y)
        <float[3, 2, 3, 3] w = {%s}, float[3] b = {0.1, -0.2, 0.3}>
        { c = Conv <pads: ints = [1, 1, 1, 1]> (x, w, b)
          r = Relu(c)
          a = Add(r, c)
          y = MaxPool <kernel_shape: ints = [2, 2], strides: ints = [2, 2]> (a) }""" % ", ".join(["0.1"] * 54),
    "attention": """<ir_version: 8, opset_import: ["" : 17]>
        g (float[1, 4, 8] q, float[1, 8, 4] k) => (float[1, 4, 4] y)
        <float s = {0.5}, int64[2] shp = {4, 4}>
        { m = MatMul(q, k)
          d = Mul(m, s)
          p = Softmax <axis: int = -1> (d)
          t = Transpose <perm: ints = [0, 2, 1]> (p)
          y = Sub(p, t) }""",
    "shapes": """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2, 3, 4] x) => (float[6, 4] y)
        <int64[2] shp = {6, 4}, int64[1] ax = {0}>
        { s = Shape(x)
          r = Reshape(x, shp)
          u = Unsqueeze(r, ax)
          q = Squeeze(u, ax)
          e = Exp(q)
          y = Identity(e) }""",
}

OPS = ["Relu", "Add", "Mul", "Conv", "MatMul", "Reshape", "Transpose", "Softmax", "Concat", "Gather",
       "Slice", "MaxPool", "Squeeze", "Unsqueeze", "Identity", "Exp", "Sub", "Gemm", "Flatten", "Where",
       "ReduceMean", "Split", "Cast", "Clip", "LayerNormalization", "Frobnicate"]


def seed_models() -> dict[str, onnx.ModelProto]:
    return {k: onnx.parser.parse_model(v) for k, v in SEEDS_TEXT.items()}


def mutate_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    kind = rng.integers(4)
    if kind == 0:  # flip bytes
        for _ in range(int(rng.integers(1, 8))):
            i = int(rng.integers(len(b)))
            b[i] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # truncate
        b = b[: int(rng.integers(1, len(b)))]
    elif kind == 2:  # insert random bytes
        i = int(rng.integers(len(b)))
        b[i:i] = rng.integers(0, 256, size=int(rng.integers(1, 16)), dtype=np.uint8).tobytes()
    else:  # overwrite a varint-ish byte with an extreme value
        i = int(rng.integers(len(b)))
        b[i] = int(rng.choice([0x00, 0x7F, 0x80, 0xFF]))
    return bytes(b)


def _all_value_names(g: onnx.GraphProto) -> list[str]:
    names = [i.name for i in g.input] + [t.name for t in g.initializer]
    for n in g.node:
        names += list(n.output)
    return names


def mutate_graph(model: onnx.ModelProto, rng: np.random.Generator) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for _ in range(int(rng.integers(1, 3))):
        kind = int(rng.integers(10))
        node = g.node[int(rng.integers(len(g.node)))] if g.node else None
        if kind == 0 and node is not None:
            node.op_type = str(rng.choice(OPS))
        elif kind == 1 and node is not None and node.input:
            node.input[int(rng.integers(len(node.input)))] = str(rng.choice(_all_value_names(g) + ["", "ghost"]))
        elif kind == 2 and node is not None and node.attribute:
            a = node.attribute[int(rng.integers(len(node.attribute)))]
            if a.ints:
                a.ints[int(rng.integers(len(a.ints)))] = int(rng.choice([-1, 0, 7, 1 << 20, -(1 << 40)]))
            elif a.type == onnx.AttributeProto.INT:
                a.i = int(rng.choice([-5, 0, 3, 1 << 31]))
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = float(rng.choice([np.nan, -1e30, 0.0]))
        elif kind == 3 and g.input:
            dims = g.input[int(rng.integers(len(g.input)))].type.tensor_type.shape.dim
            if dims:
                d = dims[int(rng.integers(len(dims)))]
                choice = int(rng.integers(3))
                if choice == 0:
                    d.dim_value = int(rng.choice([0, 1, 5, 1 << 40]))
                elif choice == 1:
                    d.dim_param = "N"
                else:
                    d.Clear()
        elif kind == 4 and g.initializer:
            t = g.initializer[int(rng.integers(len(g.initializer)))]
            if rng.integers(2):
                t.dims.append(int(rng.choice([2, 1 << 30])))
            else:
                t.data_type = int(rng.choice([TensorProto.INT64, TensorProto.FLOAT16, TensorProto.STRING, 0]))
        elif kind == 5 and g.initializer:
            del g.initializer[int(rng.integers(len(g.initializer)))]
        elif kind == 6 and node is not None and len(g.node) > 1:
            i = int(rng.integers(len(g.node)))  # reorder: may break topological order or form a cycle
            moved = onnx.NodeProto()
            moved.CopyFrom(g.node[i])
            del g.node[i]
            g.node.append(moved) if rng.integers(2) else g.node.insert(0, moved)
        elif kind == 7 and node is not None:
            node.output[0] = str(rng.choice(_all_value_names(g)))  # duplicate names / cycles
        elif kind == 8 and g.initializer:
            t = g.initializer[int(rng.integers(len(g.initializer)))]
            t.data_location = TensorProto.EXTERNAL
            e = t.external_data.add()
            e.key, e.value = "location", str(rng.choice(["../../etc/passwd", "/etc/passwd", "missing.bin"]))
        else:
            m.opset_import[0].version = int(rng.choice([1, 6, 11, 13, 22, 30]))
    return m


def mutants(count: int, seed: int = 0):
    """Yield (name, bytes) for `count` mutated models, half byte-level, half structural."""
    rng = np.random.default_rng(seed)
    seeds = seed_models()
    keys = sorted(seeds)
    for i in range(count):
        key = keys[i % len(keys)]
        if i % 2 == 0:
            yield f"{i:05d}-{key}-bytes", mutate_bytes(seeds[key].SerializeToString(), rng)
        else:
            yield f"{i:05d}-{key}-graph", mutate_graph(seeds[key], rng).SerializeToString()
