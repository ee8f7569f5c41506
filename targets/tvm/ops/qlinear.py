"""ONNX-domain quantized operators ("QOperator" format): QLinearConv, QLinearMatMul, ConvInteger,
MatMulInteger, DynamicQuantizeLinear. Arithmetic as in `quant_util` (int32 accumulation,
round half to even on requantization, saturation); per-tensor and per-channel parameters."""

from __future__ import annotations

from tvm import relax

from edgec.targets.tvm.lower_context import dtype_of, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.ops.qconv_int8 import int8_conv_acc
from edgec.targets.tvm.ops.qmatmul_int8 import dot_matmul
from edgec.targets.tvm.ops.quant_util import (
    along,
    centered,
    centered_bound,
    check_qtype,
    dynamic_qparams,
    exact_in_float32,
    exact_matmul,
    f32,
    int_conv,
    opt,
    quantize,
    requantize,
    scale,
    zero_point,
)

_R = relax.op


def _rank(x) -> int:
    s = shape_of(x)
    if s is None:
        raise Unsupported("inputs must have a static shape")
    return len(s)


def _conv_acc(ctx, node, xs, ix: int, ixzp: int, iw: int, iwzp: int):
    """int32 Conv((x - x_zp), (w - w_zp[m])): the common core of QLinearConv and ConvInteger."""
    x, w = xs[ix], xs[iw]
    check_qtype(dtype_of(x), "input X")
    check_qtype(dtype_of(w), "weight W")
    r = _rank(w)
    x_c = centered(ctx, x, zero_point(ctx, node, xs, ixzp, what="x_zero_point"))
    w_c = centered(ctx, w, zero_point(ctx, node, xs, iwzp, axis=0, rank=r, what="w_zero_point"))
    if exact_in_float32(ctx, node, centered_bound(ctx, node, ixzp, dtype_of(x)), iw, iwzp, 0, range(1, r)):
        acc = int_conv(ctx, node, f32(ctx, x_c), f32(ctx, w_c), out_dtype="float32")
        return ctx.emit(_R.astype(acc, "int32")), r
    return int_conv(ctx, node, x_c, w_c), r


@lowers("ConvInteger")
def conv_integer(ctx, node, xs):
    return _conv_acc(ctx, node, xs, 0, 2, 1, 3)[0]


@lowers("QLinearConv")
def qlinear_conv(ctx, node, xs):
    """y = saturate(round((Conv(x - x_zp, w - w_zp) + B) * x_scale * w_scale / y_scale) + y_zp)."""
    acc, r = int8_conv_acc(ctx, node, xs), 4
    bias = None
    if acc is None:
        acc, r = _conv_acc(ctx, node, xs, 0, 2, 3, 5)
        bias = opt(node, xs, 8)
    if bias is not None:
        if dtype_of(bias) != "int32":
            raise Unsupported(f"bias B must be int32, got {dtype_of(bias)}")
        acc = ctx.emit(_R.add(acc, along(ctx, bias, 1, r)))
    x_scale = scale(ctx, node, xs, 1, "x_scale")
    w_scale = scale(ctx, node, xs, 4, "w_scale", axis=1, rank=r)
    y_scale = scale(ctx, node, xs, 6, "y_scale")
    mult = ctx.emit(_R.divide(ctx.emit(_R.multiply(x_scale, w_scale)), y_scale))
    y_zp = opt(node, xs, 7)
    out = check_qtype(dtype_of(y_zp), "y_zero_point") if y_zp is not None else dtype_of(xs[0])
    return requantize(ctx, acc, mult, zero_point(ctx, node, xs, 7, what="y_zero_point"), out)


def _matmul_acc(ctx, node, xs, ia: int, iazp: int, ib: int, ibzp: int):
    """int32 MatMul((a - a_zp), (b - b_zp)); a_zp per-tensor or per-row, b_zp per-tensor or per-column."""
    a, b = xs[ia], xs[ib]
    check_qtype(dtype_of(a), "input A")
    check_qtype(dtype_of(b), "input B")
    ra, rb = _rank(a), _rank(b)
    fast = dot_matmul(ctx, node, xs, a, iazp, ib, ibzp)
    if fast is not None:
        return fast, ra
    a_c = centered(ctx, a, zero_point(ctx, node, xs, iazp, axis=-2 if ra >= 2 else 0, rank=ra, what="a_zero_point"))
    b_c = centered(ctx, b, zero_point(ctx, node, xs, ibzp, axis=-1, rank=rb, what="b_zero_point"))
    acc = exact_matmul(ctx, node, a_c, b_c, centered_bound(ctx, node, iazp, dtype_of(a)), ib, ibzp)
    return acc, _rank(acc)


@lowers("MatMulInteger")
def matmul_integer(ctx, node, xs):
    return _matmul_acc(ctx, node, xs, 0, 2, 1, 3)[0]


@lowers("QLinearMatMul")
def qlinear_matmul(ctx, node, xs):
    """y = saturate(round(MatMul(a - a_zp, b - b_zp) * a_scale * b_scale / y_scale) + y_zp)."""
    acc, r = _matmul_acc(ctx, node, xs, 0, 2, 3, 5)
    a_scale = scale(ctx, node, xs, 1, "a_scale", axis=-2, rank=max(r, 2))
    b_scale = scale(ctx, node, xs, 4, "b_scale", axis=-1, rank=r)
    y_scale = scale(ctx, node, xs, 6, "y_scale")
    mult = ctx.emit(_R.divide(ctx.emit(_R.multiply(a_scale, b_scale)), y_scale))
    y_zp = opt(node, xs, 7)
    out = check_qtype(dtype_of(y_zp), "y_zero_point") if y_zp is not None else dtype_of(xs[0])
    return requantize(ctx, acc, mult, zero_point(ctx, node, xs, 7, what="y_zero_point"), out)


@lowers("DynamicQuantizeLinear")
def dynamic_quantize_linear(ctx, node, xs):
    """(y uint8, y_scale, y_zero_point): scale and zero point from the range of x including 0."""
    x = xs[0]
    if dtype_of(x) != "float32":
        raise Unsupported(f"input must be float32, got {dtype_of(x)}")
    scale, zp = dynamic_qparams(ctx, x)
    y = ctx.emit(quantize(ctx, x, scale, zp, "uint8"))
    return [y, scale, ctx.emit(_R.astype(zp, "uint8"))]

