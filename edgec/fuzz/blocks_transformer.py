"""Transformer blocks on [1, S, D] tensors: MatMul/Gemm projections, attention with Softmax and
Where masks, LayerNorm fused (LayerNormalization) and decomposed (ReduceMean/Sub/Pow/Sqrt/Div),
RMSNorm, GELU (erf and tanh forms), feed-forward, Gather embeddings."""

from __future__ import annotations

import numpy as np

from edgec.fuzz.blocks_elementwise import activation
from edgec.fuzz.graph import Graph, Value

HIDDEN = (8, 12, 16, 20, 24, 30, 32, 37, 48, 60, 64)


def linear(g: Graph, x: Value, out: int | None = None) -> Value:
    d = x.shape[-1]
    out = out or int(g.pick(HIDDEN))
    if g.chance(0.35):   # Gemm on the 2-D view
        flat = g.op("Reshape", [x, g.ints([-1, d])], (x.shape[0] * x.shape[1], d))
        trans = g.chance(0.5)
        w = g.weight((out, d) if trans else (d, out), d)
        bias = g.const(g.uniform((out,) if g.chance(0.5) else (1, out), -0.1, 0.1))
        y = g.op("Gemm", [flat, w, bias], (flat.shape[0], out), transB=int(trans),
                 alpha=float(g.pick([1.0, 0.5])), beta=float(g.pick([1.0, 2.0])))
        return g.op("Reshape", [y, g.ints([x.shape[0], x.shape[1], out])], x.shape[:2] + (out,))
    y = g.op("MatMul", [x, g.weight((d, out), d)], x.shape[:-1] + (out,))
    return g.same("Add", y, g.const(g.uniform((out,), -0.1, 0.1))) if g.chance(0.7) else y


def layernorm_fused(g: Graph, x: Value) -> Value:
    d = x.shape[-1]
    ins = [x, g.const(g.uniform((d,), 0.5, 1.5))] + ([g.const(g.uniform((d,), -0.2, 0.2))] if g.chance(0.7) else [])
    return g.same("LayerNormalization", *ins, axis=-1, epsilon=float(g.pick([1e-5, 1e-6, 1e-3])))


def layernorm_decomposed(g: Graph, x: Value) -> Value:
    """The exporter pattern: mean, centred, variance via Pow 2, Sqrt(var + eps), Div, affine."""
    kept = x.shape[:-1] + (1,)
    mean = g.op("ReduceMean", [x], kept, axes=[-1], keepdims=1)
    centred = g.same("Sub", x, mean)
    sq = g.same("Pow", centred, g.const(np.float32(2.0))) if g.chance(0.7) else g.same("Mul", centred, centred)
    var = g.op("ReduceMean", [sq], kept, axes=[-1], keepdims=1)
    std = g.same("Sqrt", g.same("Add", var, g.const(np.float32(g.pick([1e-5, 1e-3])))))
    y = g.op("Div", [centred, std], x.shape)
    y = g.same("Mul", y, g.const(g.uniform((x.shape[-1],), 0.5, 1.5)))
    return g.same("Add", y, g.const(g.uniform((x.shape[-1],), -0.2, 0.2))) if g.chance(0.7) else y


def rmsnorm(g: Graph, x: Value) -> Value:
    kept = x.shape[:-1] + (1,)
    ms = g.op("ReduceMean", [g.same("Mul", x, x)], kept, axes=[-1], keepdims=1)
    inv = g.same("Reciprocal", g.same("Sqrt", g.same("Add", ms, g.const(np.float32(1e-5)))))
    return g.same("Mul", g.op("Mul", [x, inv], x.shape), g.const(g.uniform((x.shape[-1],), 0.5, 1.5)))


def gelu(g: Graph, x: Value) -> Value:
    half = g.const(np.float32(0.5))
    one = g.const(np.float32(1.0))
    if g.chance(0.5):   # erf form
        e = g.same("Erf", g.same("Div", x, g.const(np.float32(np.sqrt(2.0)))))
        return g.same("Mul", g.same("Mul", x, half), g.same("Add", e, one))
    cube = g.same("Pow", x, g.const(np.float32(3.0)))   # tanh form
    inner = g.same("Add", x, g.same("Mul", cube, g.const(np.float32(0.044715))))
    t = g.same("Tanh", g.same("Mul", inner, g.const(np.float32(np.sqrt(2.0 / np.pi)))))
    return g.same("Mul", g.op("Mul", [half, x], x.shape), g.op("Add", [one, t], x.shape))


def feed_forward(g: Graph, x: Value) -> Value:
    d = x.shape[-1]
    h = linear(g, x, int(g.pick([2 * d, d + 3, 64])) if d <= 32 else 64)
    h = gelu(g, h) if g.chance(0.5) else activation(g, h, g.pick(("Relu", "Sigmoid", "Tanh")))
    return g.same("Add", x, linear(g, h, d))


def _heads(g: Graph, d: int) -> int:
    return int(g.pick([h for h in (1, 2, 4, 3, 5) if d % h == 0]))


def attention_mask(g: Graph, s: int) -> Value:
    """A [1, 1, S, S] bool mask: causal constant, a computed comparison, or a graph input."""
    kind = g.pick(("causal", "input", "none"))
    if kind == "causal":
        return g.const(np.tril(np.ones((s, s), bool))[None, None])
    if kind == "input":
        return g.input((1, 1, s, s), "bool", prefix="mask")
    return g.const(np.ones((1, 1, s, s), bool))


def attention(g: Graph, x: Value) -> Value:
    _, s, d = x.shape
    h = _heads(g, d)
    dh = d // h
    q, k, v = (g.op("MatMul", [x, g.weight((d, d), d)], x.shape) for _ in range(3))
    split = (1, s, h, dh)
    q, k, v = (g.op("Reshape", [t, g.ints(split)], split) for t in (q, k, v))
    q = g.op("Transpose", [q], (1, h, s, dh), perm=[0, 2, 1, 3])
    kt = g.op("Transpose", [k], (1, h, dh, s), perm=[0, 2, 3, 1])
    v = g.op("Transpose", [v], (1, h, s, dh), perm=[0, 2, 1, 3])
    scores = g.op("MatMul", [q, kt], (1, h, s, s))
    scale = g.const(np.float32(1.0 / np.sqrt(dh)))
    scores = g.same("Mul", scores, scale) if g.chance(0.5) else g.same("Div", scores, g.const(np.float32(np.sqrt(dh))))
    if g.chance(0.7):
        mask = attention_mask(g, s)
        fill = g.const(np.float32(g.pick([-1e4, -1e9])))
        scores = g.op("Where", [mask, scores, fill], scores.shape)
    p = g.same("Softmax", scores, axis=-1)
    ctx = g.op("MatMul", [p, v], (1, h, s, dh))
    ctx = g.op("Transpose", [ctx], (1, s, h, dh), perm=[0, 2, 1, 3])
    ctx = g.op("Reshape", [ctx, g.ints([1, s, d])], x.shape)
    return g.same("Add", x, linear(g, ctx, d))


def embedding(g: Graph, x: Value) -> Value:
    """Gather rows of a table by int64 indices (an input in [0, 4) or constants, some negative)."""
    _, s, d = x.shape
    rows = int(g.pick([4, 6, 11]))
    table = g.const(g.uniform((rows, d)))
    if g.chance(0.5):
        idx = g.input((1, s), "int64", prefix="ids")
    else:
        idx = g.ints(g.rng.integers(-rows, rows, size=(1, s)))
    return g.same("Add", x, g.op("Gather", [table, idx], (1, s, d), axis=0))


def gather_positions(g: Graph, x: Value) -> Value:
    """Gather along the sequence axis with constant indices (reversal, repeats, negatives)."""
    s = x.shape[1]
    idx = g.rng.integers(-s, s, size=(s,))
    return g.op("Gather", [x, g.ints(idx)], x.shape, axis=1)


def softmax_any(g: Graph, x: Value) -> Value:
    op = g.pick(("Softmax", "LogSoftmax"))
    return g.same(op, x, axis=int(g.pick([-1, 1, 2])))


def fused_norm_residual(g: Graph, x: Value) -> Value:
    """Pre-norm block: x + f(LayerNorm(x))."""
    n = layernorm_fused(g, x) if g.chance(0.5) else layernorm_decomposed(g, x)
    return g.same("Add", x, activation(g, linear(g, n, x.shape[-1]), "Tanh"))


TRANSFORMER_BLOCKS = {
    "linear": (lambda g, x: linear(g, x), 3, lambda x: True),
    "layernorm_fused": (layernorm_fused, 2, lambda x: True),
    "layernorm_decomposed": (layernorm_decomposed, 2, lambda x: True),
    "rmsnorm": (rmsnorm, 1, lambda x: True),
    "gelu": (gelu, 2, lambda x: True),
    "feed_forward": (feed_forward, 2, lambda x: True),
    "attention": (attention, 3, lambda x: True),
    "embedding": (embedding, 1, lambda x: True),
    "gather_positions": (gather_positions, 1, lambda x: True),
    "softmax": (softmax_any, 1, lambda x: True),
    "norm_residual": (fused_norm_residual, 2, lambda x: True),
}


def transformer_input(g: Graph) -> Value:
    s = int(g.rng.integers(2, 17))
    d = int(g.pick(HIDDEN))
    return g.input((1, s, d), prefix="tokens")
