"""com.microsoft quantized matrix products: QGemm, MatMulIntegerToFloat, DynamicQuantizeMatMul
(the last two are what `quantize_dynamic` emits for MatMul). int32 accumulation as MLAS; float
outputs are float32(acc) · (scale_a · scale_b) + bias."""

from __future__ import annotations

from tvm import relax

from edgec.targets.tvm.lower_context import attr, dtype_of, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.ops.qmatmul_int8 import dot_matmul
from edgec.targets.tvm.ops.quant_util import (
    centered,
    centered_bound,
    check_qtype,
    dynamic_qparams,
    exact_matmul,
    f32,
    i32,
    opt,
    quantize,
    requantize,
    scale,
    zero_point,
)

_R = relax.op
MS = "com.microsoft"


def _rank(x) -> int:
    s = shape_of(x)
    if s is None:
        raise Unsupported("inputs must have a static shape")
    return len(s)


def _int_matmul(ctx, a_c, a_bound, b, b_index, b_zp_index, node, xs, trans_b=False):
    """MatMul(a_c, b - b_zp) in int32 (|a_c| <= a_bound); a_c is already centered, b_zp per-tensor or
    per-column; b = input `b_index` (transposed from [N, K] when `trans_b`)."""
    check_qtype(dtype_of(b), "input B")
    b_c = centered(ctx, b, zero_point(ctx, node, xs, b_zp_index, axis=-1, rank=_rank(b), what="b_zero_point"))
    return exact_matmul(ctx, node, a_c, b_c, a_bound, b_index, b_zp_index, trans_b)


def _scale_bias(ctx, acc, multiplier, bias):
    y = ctx.emit(_R.multiply(f32(ctx, acc), multiplier))
    return _R.add(y, f32(ctx, bias)) if bias is not None else y


@lowers("MatMulIntegerToFloat", domain=MS)
def matmul_integer_to_float(ctx, node, xs):
    """Y = (A - a_zp)·(B - b_zp) · a_scale·b_scale + bias; inputs A, B, a_scale, b_scale, a_zp, b_zp, bias."""
    check_qtype(dtype_of(xs[0]), "input A")
    acc = dot_matmul(ctx, node, xs, xs[0], 4, 1, 5)
    if acc is None:
        a_c = centered(ctx, xs[0], zero_point(ctx, node, xs, 4, what="a_zero_point"))
        acc = _int_matmul(ctx, a_c, centered_bound(ctx, node, 4, dtype_of(xs[0])), xs[1], 1, 5, node, xs)
    mult = ctx.emit(_R.multiply(scale(ctx, node, xs, 2, "a_scale"),
                                scale(ctx, node, xs, 3, "b_scale", axis=-1, rank=_rank(acc))))
    return _scale_bias(ctx, acc, mult, opt(node, xs, 6))


@lowers("DynamicQuantizeMatMul", domain=MS)
def dynamic_quantize_matmul(ctx, node, xs):
    """A (float) quantized to uint8 with DynamicQuantizeLinear's parameters, then as MatMulIntegerToFloat;
    inputs A, B, b_scale, b_zero_point, bias."""
    a = xs[0]
    if dtype_of(a) != "float32":
        raise Unsupported(f"input A must be float32, got {dtype_of(a)}")
    a_scale, a_zp = dynamic_qparams(ctx, a)
    a_q = ctx.emit(quantize(ctx, a, a_scale, a_zp, "uint8"))
    acc = dot_matmul(ctx, node, xs, a_q, None, 1, 3, a_zp=i32(ctx, a_zp))
    if acc is None:
        acc = _int_matmul(ctx, ctx.emit(_R.subtract(i32(ctx, a_q), i32(ctx, a_zp))), 255, xs[1], 1, 3, node, xs)
    mult = ctx.emit(_R.multiply(a_scale, scale(ctx, node, xs, 2, "b_scale", axis=-1, rank=_rank(acc))))
    return _scale_bias(ctx, acc, mult, opt(node, xs, 4))


@lowers("QGemm", domain=MS)
def qgemm(ctx, node, xs):
    """acc = (A' - a_zp)·(B' - b_zp) + C (int32); Y = requantize(acc, alpha·a_scale·b_scale / y_scale, y_zp),
    or float32 acc · alpha·a_scale·b_scale when y_scale is absent. Inputs A, a_scale, a_zp, B, b_scale,
    b_zp, C, y_scale, y_zp."""
    a, b = xs[0], xs[3]
    check_qtype(dtype_of(a), "input A")
    check_qtype(dtype_of(b), "input B")
    if _rank(a) != 2 or _rank(b) != 2:
        raise Unsupported("A and B must be 2-D")
    if attr(node, "transA", 0):
        a = ctx.emit(_R.permute_dims(a, [1, 0]))
    if attr(node, "transB", 0):
        b = ctx.emit(_R.permute_dims(b, [1, 0]))
    acc = dot_matmul(ctx, node, xs, a, 2, 3, 5, trans_b=bool(attr(node, "transB", 0)))
    if acc is None:
        a_c = centered(ctx, a, zero_point(ctx, node, xs, 2, what="a_zero_point"))
        acc = _int_matmul(ctx, a_c, centered_bound(ctx, node, 2, dtype_of(a)), b, 3, 5, node, xs,
                          trans_b=bool(attr(node, "transB", 0)))
    c = opt(node, xs, 6)
    if c is not None:
        if dtype_of(c) != "int32":
            raise Unsupported(f"C must be int32, got {dtype_of(c)}")
        acc = ctx.emit(_R.add(acc, c))
    alpha = relax.const(float(attr(node, "alpha", 1.0)), "float32")
    mult = ctx.emit(_R.multiply(ctx.emit(_R.multiply(alpha, scale(ctx, node, xs, 1, "a_scale"))),
                                scale(ctx, node, xs, 4, "b_scale", axis=-1, rank=2)))
    if opt(node, xs, 7) is None:
        return _R.multiply(f32(ctx, acc), mult)
    mult = ctx.emit(_R.divide(mult, scale(ctx, node, xs, 7, "y_scale")))
    y_zp = opt(node, xs, 8)
    out = check_qtype(dtype_of(y_zp), "y_zero_point") if y_zp is not None else dtype_of(xs[0])
    return requantize(ctx, acc, mult, zero_point(ctx, node, xs, 8, what="y_zero_point"), out)
