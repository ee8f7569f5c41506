"""Per-tensor QuantizeLinear / DequantizeLinear of activations as elementwise Relax arithmetic
(`quant_util.quantize` / `dequantize`: the same values as relax quantize / dequantize) on targets
with int8 convolution kernels (`ctx.dot`). Relax's quantize / dequantize have no layout rule,
so between int8 convolutions (a residual Add between DQ and Q) they would end the blocked
NCHW16c region; elementwise ops stay in it and fuse with their neighbours."""

from __future__ import annotations

import numpy as np

from edgec.targets.tvm.lower_context import attr, dtype_of, has_input, shape_of
from edgec.targets.tvm.ops.quant_util import dequantize, quantize, zero_point

_EIGHT_BIT = ("uint8", "int8")


def _per_tensor(ctx, node, xs) -> bool:
    """An activation (rank >= 3) with constant scalar float32 scale and 8-bit zero point, no
    output_dtype / saturate / block_size / precision attributes."""
    if ctx.dot is None or any(a in node.attributes for a in ("output_dtype", "saturate", "block_size", "precision")):
        return False
    shp = shape_of(xs[0])
    got = ctx.const_inputs(node, 1, 2)
    if shp is None or len(shp) < 3 or got is None or got[0] is None or got[0].size != 1 \
            or got[0].dtype != np.float32:
        return False
    return got[1] is None or (got[1].size == 1 and str(got[1].dtype) in _EIGHT_BIT)


def quantize_linear(ctx, node, xs):
    """Q(x) or None when not a per-tensor 8-bit activation quantization of float32."""
    if not _per_tensor(ctx, node, xs) or dtype_of(xs[0]) != "float32":
        return None
    out = dtype_of(xs[2]) if has_input(node, 2) else "uint8"
    zp = zero_point(ctx, node, xs, 2, what="y_zero_point")
    return quantize(ctx, xs[0], ctx.emit(_scalar(xs[1])), zp, out)


def dequantize_linear(ctx, node, xs):
    """DQ(x) (float32) or None when not a per-tensor 8-bit activation dequantization."""
    if not _per_tensor(ctx, node, xs) or dtype_of(xs[0]) not in _EIGHT_BIT or int(attr(node, "axis", 1)) not in (1, -3):
        return None
    zp = zero_point(ctx, node, xs, 2, what="x_zero_point")
    return dequantize(ctx, xs[0], ctx.emit(_scalar(xs[1])), zp)


def _scalar(v):
    from tvm import relax

    return relax.op.reshape(v, ())
