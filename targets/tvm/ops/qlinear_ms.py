"""com.microsoft quantized element-wise, pooling and concat ops emitted by onnxruntime's quantizer
(QOperator format): QLinearAdd, QLinearMul, QLinearSigmoid, QLinearLeakyRelu,
QLinearAveragePool, QLinearGlobalAveragePool, QLinearConcat. All parameters are per-tensor.

Where onnxruntime's kernel is integer-exact (global average pool, concat) so is this lowering;
the others dequantize, compute in float32 and requantize as onnxruntime's reference formulas do
(its vectorized kernels may fuse multiply-adds or use a different exp, so an element can differ by
one quantized unit)."""

from __future__ import annotations

from tvm import relax

from edgec.targets.tvm.lower_context import attr, dtype_of, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.ops.quant_util import (
    centered,
    check_qtype,
    conv_pads,
    dequantize,
    f32,
    quantize,
    requantize,
    saturate,
    scale,
    zero_point,
)

_R = relax.op
MS = "com.microsoft"


def _qtype(x) -> str:
    return check_qtype(dtype_of(x), "input X")


@lowers("QLinearAdd", domain=MS)
def qlinear_add(ctx, node, xs):
    """C = saturate(round(zc + (sa/sc)·(a - za) + (sb/sc)·(b - zb))), numpy broadcasting."""
    out = _qtype(xs[0])
    check_qtype(dtype_of(xs[3]), "input B")
    sc = scale(ctx, node, xs, 6, "C_scale")
    ra = ctx.emit(_R.divide(scale(ctx, node, xs, 1, "A_scale"), sc))
    rb = ctx.emit(_R.divide(scale(ctx, node, xs, 4, "B_scale"), sc))
    a = ctx.emit(_R.multiply(f32(ctx, centered(ctx, xs[0], zero_point(ctx, node, xs, 2, what="A_zero_point"))), ra))
    b = ctx.emit(_R.multiply(f32(ctx, centered(ctx, xs[3], zero_point(ctx, node, xs, 5, what="B_zero_point"))), rb))
    return saturate(ctx, ctx.emit(_R.add(a, b)), zero_point(ctx, node, xs, 7, what="C_zero_point"), out)


@lowers("QLinearMul", domain=MS)
def qlinear_mul(ctx, node, xs):
    """C = saturate(round((a - za)·(b - zb) · sa·sb/sc) + zc): the product is exact in int32."""
    out = _qtype(xs[0])
    check_qtype(dtype_of(xs[3]), "input B")
    prod = ctx.emit(_R.multiply(centered(ctx, xs[0], zero_point(ctx, node, xs, 2, what="A_zero_point")),
                                centered(ctx, xs[3], zero_point(ctx, node, xs, 5, what="B_zero_point"))))
    mult = ctx.emit(_R.divide(ctx.emit(_R.multiply(scale(ctx, node, xs, 1, "A_scale"), scale(ctx, node, xs, 4, "B_scale"))),
                              scale(ctx, node, xs, 6, "C_scale")))
    return requantize(ctx, prod, mult, zero_point(ctx, node, xs, 7, what="C_zero_point"), out)


def _unary(ctx, node, xs, fn):
    """quantize(fn(dequantize(x))) with X_scale, X_zero_point, Y_scale, Y_zero_point at 1..4."""
    out = _qtype(xs[0])
    x = dequantize(ctx, xs[0], scale(ctx, node, xs, 1, "X_scale"), zero_point(ctx, node, xs, 2, what="X_zero_point"))
    return quantize(ctx, ctx.emit(fn(x)), scale(ctx, node, xs, 3, "Y_scale"),
                    zero_point(ctx, node, xs, 4, what="Y_zero_point"), out)


@lowers("QLinearSigmoid", domain=MS)
def qlinear_sigmoid(ctx, node, xs):
    return _unary(ctx, node, xs, _R.sigmoid)


@lowers("QLinearLeakyRelu", domain=MS)
def qlinear_leaky_relu(ctx, node, xs):
    alpha = relax.const(float(attr(node, "alpha", 0.01)), "float32")
    zero = relax.const(0.0, "float32")
    return _unary(ctx, node, xs, lambda x: _R.where(_R.greater_equal(x, zero), x, ctx.emit(_R.multiply(x, alpha))))


_POOL = {1: _R.nn.avg_pool1d, 2: _R.nn.avg_pool2d, 3: _R.nn.avg_pool3d}
_LAYOUT = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


@lowers("QLinearAveragePool", domain=MS)
def qlinear_average_pool(ctx, node, xs):
    """quantize(AveragePool(dequantize(x))) with round(avg / y_scale + y_zp) as onnxruntime's kernel
    (zero point added before rounding); `channels_last` = 1 pools an N…C tensor."""
    out = _qtype(xs[0])
    shp = shape_of(xs[0])
    if shp is None or len(shp) not in (3, 4, 5):
        raise Unsupported(f"input must be 3-D, 4-D or 5-D with a static shape, got {shp}")
    n = len(shp) - 2
    last = bool(attr(node, "channels_last", 0))
    spatial = shp[1:-1] if last else shp[2:]
    kernel = [int(k) for k in attr(node, "kernel_shape")]
    strides = [int(s) for s in attr(node, "strides", [1] * n)]
    pads = conv_pads(node, spatial, kernel, strides, [1] * n)
    x = dequantize(ctx, xs[0], scale(ctx, node, xs, 1, "x_scale"), zero_point(ctx, node, xs, 2, what="x_zero_point"))
    y = ctx.emit(_POOL[n](x, pool_size=kernel, strides=strides, padding=pads, ceil_mode=bool(attr(node, "ceil_mode", 0)),
                          count_include_pad=bool(attr(node, "count_include_pad", 0)), layout=_LAYOUT[n][int(last)]))
    return quantize(ctx, y, scale(ctx, node, xs, 3, "y_scale"), zero_point(ctx, node, xs, 4, what="y_zero_point"), out,
                    zp_first=True)


@lowers("QLinearGlobalAveragePool", domain=MS)
def qlinear_global_average_pool(ctx, node, xs):
    """y = saturate(round((Σx - N·zx) · sx / (sy·N)) + zy) over the spatial axes (integer sum, as MLAS)."""
    out = _qtype(xs[0])
    shp = shape_of(xs[0])
    if shp is None or len(shp) < 3:
        raise Unsupported(f"input must have rank >= 3 and a static shape, got {shp}")
    axes = list(range(1, len(shp) - 1)) if attr(node, "channels_last", 0) else list(range(2, len(shp)))
    size = 1
    for a in axes:
        size *= shp[a]
    acc = ctx.emit(_R.sum(centered(ctx, xs[0], zero_point(ctx, node, xs, 2, what="x_zero_point")), axis=axes,
                          keepdims=True))
    denom = ctx.emit(_R.multiply(scale(ctx, node, xs, 3, "y_scale"), relax.const(float(size), "float32")))
    mult = ctx.emit(_R.divide(scale(ctx, node, xs, 1, "x_scale"), denom))
    return requantize(ctx, acc, mult, zero_point(ctx, node, xs, 4, what="y_zero_point"), out)


def _same_params(ctx, node, i: int, j: int) -> bool:
    """True if inputs i and j (scale, zero point pairs) are the same compile-time constants."""
    got = ctx.const_inputs(node, i, i + 1, j, j + 1)
    if got is None or any(v is None for v in got):
        return False
    return bool((got[0] == got[2]).all() and (got[1] == got[3]).all())


@lowers("QLinearConcat", domain=MS)
def qlinear_concat(ctx, node, xs):
    """Concat of (x_i, x_scale_i, x_zero_point_i) requantized to (Y_scale, Y_zero_point)."""
    if len(xs) < 5 or (len(xs) - 2) % 3:
        raise Unsupported(f"expects Y_scale, Y_zero_point and (X, X_scale, X_zero_point) triples, got {len(xs)} inputs")
    out = check_qtype(dtype_of(xs[1]), "Y_zero_point")
    y_scale, y_zp = scale(ctx, node, xs, 0, "Y_scale"), zero_point(ctx, node, xs, 1, what="Y_zero_point")
    parts = []
    for k in range(2, len(xs), 3):
        if dtype_of(xs[k]) != out:
            raise Unsupported(f"input {k} has type {dtype_of(xs[k])}, Y_zero_point {out}")
        if _same_params(ctx, node, k + 1, 0):
            parts.append(xs[k])
            continue
        x = dequantize(ctx, xs[k], scale(ctx, node, xs, k + 1, f"scale of input {k}"),
                       zero_point(ctx, node, xs, k + 2, what=f"zero point of input {k}"))
        parts.append(ctx.emit(quantize(ctx, x, y_scale, y_zp, out)))
    return _R.concat(parts, axis=int(attr(node, "axis")))

