"""Elementwise ops: arithmetic, activations, comparisons, casts."""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.targets.tvm.lower_context import attr, dtype_of
from edgec.targets.tvm.ops import lowers

_R = relax.op
_BINARY = {"Add": _R.add, "Sub": _R.subtract, "Mul": _R.multiply, "Div": _R.divide,
           "Max": _R.maximum, "Min": _R.minimum, "Equal": _R.equal, "Greater": _R.greater,
           "Less": _R.less, "GreaterOrEqual": _R.greater_equal, "LessOrEqual": _R.less_equal,
           "And": _R.logical_and, "Or": _R.logical_or, "Xor": _R.logical_xor}
_UNARY = {"Relu": _R.nn.relu, "Sigmoid": _R.sigmoid, "Tanh": _R.tanh, "Exp": _R.exp, "Log": _R.log,
          "Sqrt": _R.sqrt, "Erf": _R.erf, "Neg": _R.negative, "Abs": _R.abs, "Floor": _R.floor,
          "Ceil": _R.ceil, "Sin": _R.sin, "Cos": _R.cos, "Not": _R.logical_not, "Sign": _R.sign,
          "Reciprocal": lambda x: _R.divide(relax.const(1.0, dtype_of(x)), x)}


@lowers(*_BINARY)
def binary(ctx, node, xs):
    fn = _BINARY[node.op_type]
    if node.op_type in ("Max", "Min") and len(xs) != 2:
        if len(xs) == 1:
            return xs[0]
        out = xs[0]
        for x in xs[1:]:
            out = ctx.emit(fn(out, x))
        return out
    if node.op_type == "Div" and dtype_of(xs[0]).startswith("int"):
        return NotImplemented  # ONNX integer Div truncates; Relax divide differs
    if node.op_type == "Div" and _is_scalar_zero(ctx, node.inputs[1]):
        # TVM's constant folder asserts on x / 0.0 once legalization inlines the scalar. IEEE
        # x / +-0 and x * +-inf agree for every x (+-inf by sign, NaN for 0 and NaN): exact.
        with np.errstate(divide="ignore"):
            inf = np.reciprocal(ctx.constants[node.inputs[1].name])
        return _R.multiply(xs[0], relax.const(inf, dtype_of(xs[0])))
    return fn(xs[0], xs[1])


def _is_scalar_zero(ctx, v) -> bool:
    a = ctx.constants.get(v.name) if v is not None else None
    return a is not None and a.ndim == 0 and a.dtype.kind == "f" and a == 0


@lowers("Sum")
def sum_(ctx, node, xs):
    out = xs[0]
    for x in xs[1:]:
        out = ctx.emit(_R.add(out, x))
    return out


@lowers(*_UNARY)
def unary(ctx, node, xs):
    # float16 Erf comes as float32 (targets/tvm/half.py; LLVM has no float16 erf on x86)
    return _UNARY[node.op_type](xs[0])


@lowers("LeakyRelu")
def leaky_relu(ctx, node, xs):
    return _R.nn.leakyrelu(xs[0], float(attr(node, "alpha", 0.01)))


@lowers("HardSigmoid")
def hard_sigmoid(ctx, node, xs):
    x = xs[0]
    a, b = float(attr(node, "alpha", 0.2)), float(attr(node, "beta", 0.5))
    y = ctx.emit(_R.add(_R.multiply(x, relax.const(a, dtype_of(x))), relax.const(b, dtype_of(x))))
    return _R.clip(y, 0.0, 1.0)


@lowers("HardSwish")
def hard_swish(ctx, node, xs):
    x = xs[0]
    hs = ctx.emit(hard_sigmoid(ctx, _Fake({"alpha": 1 / 6, "beta": 0.5}), [x]))
    return _R.multiply(x, hs)


@lowers("Clip")
def clip(ctx, node, xs):
    x = xs[0]
    if ctx.opset < 11:
        lo, hi = attr(node, "min", float("-inf")), attr(node, "max", float("inf"))
    else:
        lo_a = ctx.const_array(node.inputs[1]) if len(node.inputs) > 1 else None
        hi_a = ctx.const_array(node.inputs[2]) if len(node.inputs) > 2 else None
        if (len(node.inputs) > 1 and node.inputs[1] is not None and lo_a is None) or (
                len(node.inputs) > 2 and node.inputs[2] is not None and hi_a is None):
            return NotImplemented
        lo = float(lo_a) if lo_a is not None else float("-inf")
        hi = float(hi_a) if hi_a is not None else float("inf")
    dt = dtype_of(x)
    if ctx.opset >= 12 and dt in ("uint8", "int8", "int16", "uint16", "int32"):
        # integer Clip (a fused ReLU6 on quantized values): min(max(x, lo), hi) as elementwise Relax
        # ops, which the blocked layout and the conv epilogues take in (not the frontend's call_tir)
        if lo_a is not None:
            x = ctx.emit(_R.maximum(x, relax.const(lo_a.reshape(()), dt)))
        return _R.minimum(x, relax.const(hi_a.reshape(()), dt)) if hi_a is not None else x
    if not dt.startswith("float"):
        return NotImplemented
    lo = max(lo, float(np.finfo(np.float32).min))
    hi = min(hi, float(np.finfo(np.float32).max))
    return _R.clip(x, lo, hi)


@lowers("Identity", "Dropout")
def identity(ctx, node, xs):
    if node.op_type == "Dropout" and len(node.outputs) > 1 and node.outputs[1].name:
        return NotImplemented
    return xs[0]


@lowers("Where")
def where(ctx, node, xs):
    return _R.where(xs[0], xs[1], xs[2])


class _Fake:
    """A stand-in node carrying only attributes, for reusing a lowering."""

    def __init__(self, attrs):
        import onnx_ir as ir

        self.attributes = {k: ir.Attr(k, ir.AttributeType.FLOAT, float(v)) for k, v in attrs.items()}
