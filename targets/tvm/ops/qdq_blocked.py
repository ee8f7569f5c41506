"""Blocked QuantizeLinear / DequantizeLinear (opset 21+, `block_size` > 0): one scale and zero point
per `block_size` consecutive elements along `axis`. Per-tensor and per-axis Q/DQ are left to TVM's
ONNX frontend (relax quantize / dequantize, the same arithmetic), except per-tensor ones of
activations on int8-kernel targets (qdq_elementwise.py)."""

from __future__ import annotations

from tvm import relax

from edgec.targets.tvm.lower_context import attr, dtype_of, has_input, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.ops.cast import onnx_dtype
from edgec.targets.tvm.ops.qdq_elementwise import dequantize_linear, quantize_linear
from edgec.targets.tvm.ops.quant_util import QRANGE, f32, i32, saturate

_R = relax.op


def _blocks(ctx, node, xs):
    """(x, block-expanded scale, block-expanded zero point or None, axis) or None if not blocked."""
    block = int(attr(node, "block_size", 0))
    if block <= 0:
        return None
    x, s = xs[0], xs[1]
    shp, sshp = shape_of(x), shape_of(s)
    if shp is None or sshp is None or len(sshp) != len(shp):
        raise Unsupported(f"blocked quantization needs a scale of the input's rank, got {sshp} for {shp}")
    axis = int(attr(node, "axis", 1)) % len(shp)
    if sshp[axis] != -(-shp[axis] // block):
        raise Unsupported(f"scale dim {sshp[axis]} along axis {axis} does not match ceil({shp[axis]} / {block})")

    def expand(v):
        v = ctx.emit(_R.repeat(v, block, axis=axis))
        if sshp[axis] * block != shp[axis]:
            v = ctx.emit(_R.strided_slice(v, axes=[axis], begin=[0], end=[shp[axis]]))
        return v

    zp = expand(xs[2]) if has_input(node, 2) else None
    return x, expand(s), zp, axis


@lowers("QuantizeLinear")
def quantize_linear_blocked(ctx, node, xs):
    got = _blocks(ctx, node, xs)
    if got is None:
        out = quantize_linear(ctx, node, xs)  # per tensor, between int8 convs: elementwise
        return NotImplemented if out is None else out
    x, s, zp, _ = got
    if int(attr(node, "precision", 0)):
        raise Unsupported("attribute 'precision' is not supported")
    code = int(attr(node, "output_dtype", 0))
    out = onnx_dtype(code) if code else (dtype_of(zp) if zp is not None else "uint8")
    if out not in QRANGE:
        raise Unsupported(f"output type {out} is not supported (int8, uint8, int16, uint16)")
    y = ctx.emit(_R.divide(f32(ctx, x), f32(ctx, s)))
    return saturate(ctx, y, zp if zp is not None else relax.const(0, "int32"), out)


@lowers("DequantizeLinear")
def dequantize_linear_blocked(ctx, node, xs):
    got = _blocks(ctx, node, xs)
    if got is None:
        out = dequantize_linear(ctx, node, xs)  # per tensor, between int8 convs: elementwise
        return NotImplemented if out is None else out
    x, s, zp, _ = got
    code = int(attr(node, "output_dtype", 0))
    out = onnx_dtype(code) if code else dtype_of(s)
    xc = i32(ctx, x) if zp is None else ctx.emit(_R.subtract(i32(ctx, x), i32(ctx, zp)))
    y = ctx.emit(_R.multiply(f32(ctx, xc), f32(ctx, s)))
    return y if out == "float32" else _R.astype(y, out)
