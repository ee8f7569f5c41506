"""Small float models for the quantization tests, built with seeded weights."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _init(name, a):
    return numpy_helper.from_array(np.asarray(a, np.float32), name)


def cnn(opset: int = 17, seed: int = 0) -> onnx.ModelProto:
    """x[1,3,16,16] -> Conv+Relu -> Conv(bias)+Relu -> residual Add -> GAP -> Flatten -> Gemm(transB) -> MatMul -> y[1,5]."""
    r = np.random.default_rng(seed)
    inits = [_init("w1", r.normal(0, 0.3, (8, 3, 3, 3))), _init("w2", r.normal(0, 0.2, (8, 8, 3, 3))),
             _init("b2", r.normal(0, 0.1, 8)), _init("wg", r.normal(0, 0.3, (10, 8))), _init("bg", r.normal(0, 0.1, 10)),
             _init("wm", r.normal(0, 0.3, (10, 5)))]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Add", ["r1", "r2"], ["s"], name="add"),
        helper.make_node("GlobalAveragePool", ["s"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["g"], transB=1, name="gemm"),
        helper.make_node("MatMul", ["g", "wm"], ["y"], name="matmul"),
    ]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def samples(n: int, seed: int = 1) -> list[np.ndarray]:
    r = np.random.default_rng(seed)
    return [r.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32) for _ in range(n)]


def write_npy_dir(path, arrays) -> str:
    path.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(arrays):
        np.save(path / f"s{i:03d}.npy", a)
    return str(path)
