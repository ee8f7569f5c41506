"""A small CNN trained on scikit-learn's digits (8x8 images shipped in the package), as ONNX.

Trained here in numpy (seconds; deterministic): Conv 3x3 (8 ch, pad 1) -> Relu -> MaxPool 2 ->
Flatten -> Gemm 10, softmax cross-entropy, full-batch Adam. A test fixture, not a training
framework: its only job is a model whose accuracy on held-out data means something."""

from __future__ import annotations

import functools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@functools.cache
def digits_split(seed: int = 0):
    """(x_train, y_train, x_test, y_test): x float32 [N, 1, 8, 8] in [0, 1], 80/20 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(x))
    cut = int(0.8 * len(x))
    return x[idx[:cut]], y[idx[:cut]], x[idx[cut:]], y[idx[cut:]]


def _cols(x):  # [N,1,8,8] -> [N,8,8,9] (3x3 windows, pad 1)
    p = np.pad(x[:, 0], ((0, 0), (1, 1), (1, 1)))
    return np.stack([p[:, ky:ky + 8, kx:kx + 8] for ky in range(3) for kx in range(3)], -1)


def _forward(params, cols):
    w1, b1, w2, b2 = params
    n = len(cols)
    z1 = cols @ w1 + b1                                   # [N,8,8,8] NHWC
    a1 = np.maximum(z1, 0)
    blocks = a1.reshape(n, 4, 2, 4, 2, 8)
    p = blocks.max((2, 4))                                # [N,4,4,8]
    logits = p.reshape(n, -1) @ w2 + b2
    return logits, (z1, blocks, p)


def _grads(params, cols, y):
    w1, b1, w2, b2 = params
    logits, (z1, blocks, p) = _forward(params, cols)
    e = np.exp(logits - logits.max(1, keepdims=True))
    sm = e / e.sum(1, keepdims=True)
    n = len(cols)
    dlog = sm.copy()
    dlog[np.arange(n), y] -= 1
    dlog /= n
    f = p.reshape(n, -1)
    dw2, db2 = f.T @ dlog, dlog.sum(0)
    dp = (dlog @ w2.T).reshape(p.shape)
    mask = blocks == p[:, :, None, :, None, :]
    mask = mask / mask.sum((2, 4), keepdims=True)  # ties share the gradient
    da1 = (mask * dp[:, :, None, :, None, :]).reshape(z1.shape)
    dz1 = da1 * (z1 > 0)
    dw1 = cols.reshape(-1, 9).T @ dz1.reshape(-1, 8)
    db1 = dz1.reshape(-1, 8).sum(0)
    return [dw1, db1, dw2, db2]


@functools.cache
def train(steps: int = 120, seed: int = 0):
    """Trained parameters (w1 [9,8], b1 [8], w2 [128,10], b2 [10]), float32."""
    xtr, ytr, _, _ = digits_split()
    r = np.random.default_rng(seed)
    params = [r.normal(0, 0.3, (9, 8)), np.zeros(8), r.normal(0, 0.1, (128, 10)), np.zeros(10)]
    params = [q.astype(np.float32) for q in params]
    m = [np.zeros_like(q) for q in params]
    v = [np.zeros_like(q) for q in params]
    lr, b1, b2 = 0.03, 0.9, 0.999
    cols = _cols(xtr)
    for t in range(1, steps + 1):
        for i, g in enumerate(_grads(params, cols, ytr)):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            params[i] = params[i] - lr * (m[i] / (1 - b1**t)) / (np.sqrt(v[i] / (1 - b2**t)) + 1e-8)
    return tuple(params)


def onnx_model(opset: int = 17) -> onnx.ModelProto:
    w1, b1, w2, b2 = train()
    conv_w = w1.T.reshape(8, 1, 3, 3)                              # [o, 1, ky, kx]
    gemm_w = w2.reshape(4, 4, 8, 10).transpose(2, 0, 1, 3).reshape(128, 10)  # NHWC flatten -> NCHW
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in
             (("conv_w", conv_w), ("conv_b", b1), ("fc_w", gemm_w), ("fc_b", b2))]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc"),
    ]
    g = helper.make_graph(nodes, "digits_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 8, 8])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m
