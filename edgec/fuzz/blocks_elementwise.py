"""Elementwise blocks for tensors of any rank: activations, safe Div/Sqrt/Log/Pow of computed
tensors, binary ops with broadcast constants and between two computed tensors, Where, Cast.

"Safe" means onnxruntime itself is well conditioned: a divisor is Abs(y)+1 or Sigmoid(y)+0.5,
a Sqrt/Log argument is bounded away from 0, so a correct compiler matches within 1e-4.
"""

from __future__ import annotations

import numpy as np

from edgec.fuzz.graph import Graph, Value, broadcast

ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "HardSigmoid", "HardSwish", "Softplus",
               "Abs", "Neg", "Erf", "Selu", "Softsign", "Clip", "Sin", "Cos", "Identity")


def activation(g: Graph, x: Value, op: str | None = None) -> Value:
    op = op or g.pick(ACTIVATIONS)
    if op == "LeakyRelu":
        return g.same(op, x, alpha=float(g.pick([0.01, 0.1, 0.3])))
    if op == "Elu":
        return g.same(op, x, alpha=float(g.pick([1.0, 0.5])))
    if op == "HardSigmoid":
        return g.same(op, x, alpha=0.2, beta=0.5)
    if op == "Clip":
        lo, hi = sorted(g.pick([(-0.5, 0.5), (0.0, 6.0), (-1.0, 0.25)]))
        return g.same(op, x, g.const(np.float32(lo)), g.const(np.float32(hi)))
    return g.same(op, x)


def positive(g: Graph, y: Value) -> Value:
    """A tensor >= 0.5 computed from `y`: safe to divide by, take Log/Sqrt of, raise to powers."""
    if g.chance(0.5):
        return g.same("Add", g.same("Abs", y), g.const(np.float32(1.0)))
    return g.same("Add", g.same("Sigmoid", y), g.const(np.float32(0.5)))


def partner(g: Graph, x: Value) -> Value:
    """A second computed tensor of x's shape: an earlier value (skip connection) or f(x)."""
    other = g.earlier(x.shape) if g.chance(0.5) else None
    if other is None or other.name == x.name:
        other = activation(g, x, g.pick(("Tanh", "Sigmoid", "Relu", "Neg", "Sin")))
    return other


def safe_math(g: Graph, x: Value) -> Value:
    """Div/Sqrt/Log/Pow/Reciprocal of computed tensors, made safe."""
    kind = g.pick(("div", "div_const", "sqrt", "log", "pow_const", "pow_computed", "reciprocal"))
    if kind == "div":
        return g.same("Div", x, positive(g, partner(g, x)))
    if kind == "div_const":
        return g.same("Div", x, g.const(g.uniform(x.shape[-1:], 0.5, 2.0)))
    if kind == "sqrt":
        return g.same("Sqrt", g.same("Add", g.same("Abs", x), g.const(np.float32(0.25))))
    if kind == "log":
        return g.same("Log", positive(g, x))
    if kind == "pow_const":
        return g.same("Pow", positive(g, x), g.const(np.float32(g.pick([2.0, 0.5, 1.5, 3.0, -1.0]))))
    if kind == "pow_computed":
        return g.same("Pow", positive(g, x), g.same("Tanh", partner(g, x)))
    return g.same("Reciprocal", positive(g, x))


def const_shape(g: Graph, x: Value) -> tuple[int, ...]:
    """A shape that broadcasts to x's: scalar, last dim, per-channel, ones, full or partial."""
    r, s = x.rank, x.shape
    options = [(), (s[-1],), (1,) * r, s]
    if r >= 3:
        options.append((s[1],) + (1,) * (r - 2))   # per channel for NCHW
        options.append(s[-2:])
    if r >= 2:
        options.append((s[-2], 1))
    return g.pick(options)


def binary_const(g: Graph, x: Value) -> Value:
    op = g.pick(("Add", "Sub", "Mul", "Max", "Min", "Div"))
    shape = const_shape(g, x)
    c = g.const(g.uniform(shape, 0.5, 1.5) if op == "Div" else g.uniform(shape))
    if op != "Div" and g.chance(0.3):   # constant on the left
        return g.op(op, [c, x], broadcast(c.shape, x.shape))
    return g.op(op, [x, c], broadcast(x.shape, c.shape))


def binary_computed(g: Graph, x: Value) -> Value:
    """An op between two computed tensors of the same shape, or x and a computed broadcast
    (a reduction kept as a size-1 dim)."""
    op = g.pick(("Add", "Sub", "Mul", "Max", "Min"))
    if g.chance(0.3) and x.rank >= 2:
        axis = int(g.rng.integers(x.rank))
        shape = tuple(1 if i == axis else d for i, d in enumerate(x.shape))
        red = g.op(g.pick(("ReduceMean", "ReduceMax")), [x], shape, axes=[axis], keepdims=1)
        return g.op(op, [x, red] if g.chance(0.5) else [red, x], x.shape)
    return g.same(op, x, partner(g, x))


def where_mask(g: Graph, x: Value) -> Value:
    cmp = g.pick(("Greater", "Less", "GreaterOrEqual", "LessOrEqual"))
    cond = g.op(cmp, [partner(g, x), g.const(np.float32(g.pick([0.0, 0.25, -0.3])))], x.shape, "bool")
    if g.chance(0.3):
        op = g.pick(("Not", "Xor", "And", "Or"))
        other = g.op("Less", [x, g.const(np.float32(0.5))], x.shape, "bool")
        cond = g.op(op, [cond] if op == "Not" else [cond, other], x.shape, "bool")
    other = g.const(np.float32(g.pick([0.0, -1.0, 2.5]))) if g.chance(0.5) else activation(g, x, "Tanh")
    return g.op("Where", [cond, x, other] if g.chance(0.5) else [cond, other, x], x.shape)


def cast_roundtrip(g: Graph, x: Value) -> Value:
    """Casts that are exact whatever rounding the computed values got: float<->double, bool->float."""
    kind = g.pick(("double", "bool"))
    if kind == "double":
        d = g.op("Cast", [x], x.shape, "float64", to=11)
        return g.op("Cast", [g.op("Mul", [d, g.const(np.float64(0.5))], x.shape, "float64")], x.shape, to=1)
    b = g.op("Cast", [g.op("Greater", [x, g.const(np.float32(0.0))], x.shape, "bool")], x.shape, to=1)
    return g.same("Add", x, b)


def sum_mean(g: Graph, x: Value) -> Value:
    """Variadic Sum/Mean/Max/Min of two or three computed tensors."""
    args = [x, partner(g, x)] + ([activation(g, x, "Tanh")] if g.chance(0.5) else [])
    return g.same(g.pick(("Sum", "Mean", "Max", "Min")), *args)


ELEMENTWISE_BLOCKS = {
    "activation": (activation, 3),
    "safe_math": (safe_math, 3),
    "binary_const": (binary_const, 3),
    "binary_computed": (binary_computed, 3),
    "where_mask": (where_mask, 1),
    "cast_roundtrip": (cast_roundtrip, 1),
    "sum_mean": (sum_mean, 1),
}
