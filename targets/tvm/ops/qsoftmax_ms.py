"""com.microsoft QLinearSoftmax, reproducing onnxruntime's CPU kernel (qlinear_softmax.cc) bit for bit
where float summation order allows:

- a 256-entry table T[i] = float32(exp((i - 255 + s) · x_scale)) (computed in double), with the
  overflow guard s = max(0, ln(FLT_MAX / D) - 5) / x_scale, D the reduced length;
- per row: e_j = T[255 - max(x) + x_j] (the same index formula serves int8 and uint8);
  sum = Σ e_j in float32; y_j = round_half_even(e_j · floor(1 / y_scale) / sum) + y_zero_point,
  values above 255 clamped to 255 and then narrowed to the output type (for int8 that wraps, as in
  onnxruntime).
Attribute `opset` < 13 normalizes over the flattened dims from `axis` (default 1), else over `axis`
(default -1). x_scale must be a compile-time constant (the table is built at compile time)."""

from __future__ import annotations

import math

import numpy as np
from tvm import relax

from edgec.targets.tvm.lower_context import attr, const, dtype_of, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.ops.quant_util import check_qtype, i32, scale, zero_point

_R = relax.op
FLT_MAX = float(np.finfo(np.float32).max)


def exp_table(x_scale: float, reduce_len: int) -> np.ndarray:
    shift = max(0.0, math.log(FLT_MAX / reduce_len) - 5.0) / x_scale
    i = np.arange(256, dtype=np.float64)
    return np.exp((i - 255.0 + shift) * np.float64(x_scale)).astype(np.float32)


@lowers("QLinearSoftmax", domain="com.microsoft")
def qlinear_softmax(ctx, node, xs):
    x = xs[0]
    out = check_qtype(dtype_of(x), "input X")
    shp = shape_of(x)
    if shp is None or not shp:
        raise Unsupported(f"input must have a static shape of rank >= 1, got {shp}")
    opset = int(attr(node, "opset", -1))
    if opset < 0:
        raise Unsupported("attribute 'opset' is required")
    r = len(shp)
    axis = int(attr(node, "axis", 1 if opset < 13 else -1)) % r
    got = ctx.const_inputs(node, 1)
    if got is None or got[0] is None or got[0].size != 1:
        raise Unsupported("X_scale must be a compile-time constant scalar")
    if opset < 13:
        d = int(np.prod(shp[axis:]))
        x = ctx.emit(_R.reshape(x, [int(np.prod(shp[:axis])), d]))
        red = 1
    else:
        d, red = shp[axis], axis
    xi = i32(ctx, x)
    idx = ctx.emit(_R.add(ctx.emit(_R.subtract(relax.const(255, "int32"), ctx.emit(_R.max(xi, axis=[red], keepdims=True)))),
                          xi))
    e = ctx.emit(_R.take(const(exp_table(float(got[0].reshape(-1)[0]), d)), idx, axis=0, mode="clip"))
    total = ctx.emit(_R.sum(e, axis=[red], keepdims=True))
    ys = ctx.emit(_R.floor(ctx.emit(_R.divide(relax.const(1.0, "float32"), scale(ctx, node, xs, 3, "y_scale")))))
    q = ctx.emit(_R.round(ctx.emit(_R.divide(ctx.emit(_R.multiply(e, ys)), total))))
    q = ctx.emit(_R.add(ctx.emit(_R.astype(q, "int32")), zero_point(ctx, node, xs, 4, what="y_zero_point")))
    y = ctx.emit(_R.astype(ctx.emit(_R.minimum(q, relax.const(255, "int32"))), out))
    return _R.reshape(y, shp) if opset < 13 else y
