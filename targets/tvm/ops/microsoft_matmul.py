"""com.microsoft FusedMatMul (onnxruntime's MatMulScaleFusion / transpose fusion output):
Y = alpha · MatMul(A', B'), A' / B' with the last two axes swapped when transA / transB."""

from __future__ import annotations

from tvm import relax

from edgec.targets.tvm.lower_context import attr, dtype_of, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers

_R = relax.op


def _swap_last(ctx, x):
    r = len(shape_of(x) or [])
    if r < 2:
        raise Unsupported("transA/transB need inputs of rank >= 2 with static shapes")
    return ctx.emit(_R.permute_dims(x, list(range(r - 2)) + [r - 1, r - 2]))


@lowers("FusedMatMul", domain="com.microsoft")
def ms_fused_matmul(ctx, node, xs):
    if attr(node, "transBatchA", 0) or attr(node, "transBatchB", 0):
        raise Unsupported("transBatchA / transBatchB are not supported")
    a, b = xs[0], xs[1]
    if attr(node, "transA", 0):
        a = _swap_last(ctx, a)
    if attr(node, "transB", 0):
        b = _swap_last(ctx, b)
    y = ctx.emit(_R.matmul(a, b))
    alpha = float(attr(node, "alpha", 1.0))
    return y if alpha == 1.0 else _R.multiply(y, relax.const(alpha, dtype_of(y)))
