"""com.microsoft QuantizeLinear / DequantizeLinear (onnxruntime's quantizer with UseQDQContribOps,
e.g. for 16-bit QDQ models): the ONNX formulas, per-tensor or per-`axis`, with int8/uint8/
int16/uint16 data (int32 data for DequantizeLinear); float32 or float16 scales."""

from __future__ import annotations

from tvm import relax

from edgec.targets.tvm.lower_context import attr, dtype_of, has_input, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.ops.quant_util import QRANGE, along, f32, i32, param_size, saturate

_R = relax.op
MS = "com.microsoft"


def _param(ctx, node, xs, i, rank):
    """Input i (scale or zero point) broadcastable against the data: scalar, or 1-D along `axis`."""
    axis = attr(node, "axis")
    if axis is None and param_size(xs[i]) != 1:
        raise Unsupported(f"input {i} has shape {shape_of(xs[i])} but no 'axis' is given (per-tensor needs a scalar)")
    return along(ctx, xs[i], int(axis or 0), rank)


def _rank(x) -> int:
    s = shape_of(x)
    if s is None:
        raise Unsupported("the input needs a static shape")
    return len(s)


@lowers("QuantizeLinear", domain=MS)
def ms_quantize_linear(ctx, node, xs):
    r = _rank(xs[0])
    out = dtype_of(xs[2]) if has_input(node, 2) else "uint8"
    if out not in QRANGE:
        raise Unsupported(f"output type {out} is not supported (int8, uint8, int16, uint16)")
    zp = i32(ctx, _param(ctx, node, xs, 2, r)) if has_input(node, 2) else relax.const(0, "int32")
    y = ctx.emit(_R.divide(f32(ctx, xs[0]), f32(ctx, _param(ctx, node, xs, 1, r))))
    y = saturate(ctx, y, zp, out)
    return y


@lowers("DequantizeLinear", domain=MS)
def ms_dequantize_linear(ctx, node, xs):
    x = xs[0]
    if dtype_of(x) not in (*QRANGE, "int32"):
        raise Unsupported(f"input type {dtype_of(x)} is not supported (int8, uint8, int16, uint16, int32)")
    r = _rank(x)
    xc = i32(ctx, x)
    if has_input(node, 2):
        xc = ctx.emit(_R.subtract(xc, i32(ctx, _param(ctx, node, xs, 2, r))))
    y = ctx.emit(_R.multiply(f32(ctx, xc), f32(ctx, _param(ctx, node, xs, 1, r))))
    out = dtype_of(xs[1])
    return y if out == "float32" else _R.astype(y, out)
