"""A two-conv CNN trained with torch on scikit-learn's digits (seeded, a few seconds on CPU), as
ONNX: the teacher of the distillation bar (issue 15).

x [n,1,8,8] -> Conv 3x3 16 -> Relu -> Conv 3x3 32 -> Relu -> MaxPool 2 -> Flatten -> Gemm 64
-> Relu -> Gemm 10 (logits). The ONNX graph is written from the trained weights with
onnx.helper (names fixed, opset 17), so the tests do not depend on an exporter."""

from __future__ import annotations

import functools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.models.digits_cnn import digits_split


def _net(torch, c1=16, c2=32, hidden=64):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c2 * 16, hidden), nn.ReLU(), nn.Linear(hidden, 10))


@functools.cache
def trained_weights(epochs: int = 15, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(conv1 w, b, conv2 w, b, fc1 w [out, in], b, fc2 w, b) of the CNN trained on the training split."""
    import torch

    xtr, ytr, _, _ = digits_split()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is ~10x faster than two on a busy machine
    try:
        return _train(torch, xtr, ytr, epochs, seed)
    finally:
        torch.set_num_threads(threads)


def _train(torch, xtr, ytr, epochs, seed):
    torch.manual_seed(seed)
    net = _net(torch)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return tuple(p.detach().numpy().copy() for p in net.parameters())


def onnx_model(batch: int | str = "n") -> onnx.ModelProto:
    """The trained CNN as an ONNX model (input 'x' [batch, 1, 8, 8], output 'logits' [batch, 10])."""
    w1, b1, w2, b2, f1, g1, f2, g2 = trained_weights()
    inits = [numpy_helper.from_array(np.ascontiguousarray(a, np.float32), n) for n, a in (
        ("conv1.weight", w1), ("conv1.bias", b1), ("conv2.weight", w2), ("conv2.bias", b2),
        ("fc1.weight", f1), ("fc1.bias", g1), ("fc2.weight", f2), ("fc2.bias", g2))]
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.weight", "conv2.bias"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc1.weight", "fc1.bias"], ["h"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h"], ["rh"], name="relu3"),
        helper.make_node("Gemm", ["rh", "fc2.weight", "fc2.bias"], ["logits"], transB=1, name="fc2"),
    ]
    g = helper.make_graph(nodes, "digits_torch_cnn",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, 8, 8])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m
