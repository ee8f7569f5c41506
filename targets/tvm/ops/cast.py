"""Cast and CastLike across numeric dtypes, bool, float16 and bfloat16.

ONNX semantics: casting to bool is `x != 0`; float -> integer truncates toward zero. Sub-byte
(int2/int4/float4) and float8 types, and strings, are declined with an UnsupportedOpError."""

from __future__ import annotations

import numpy as np
from tvm import relax, topi

from edgec.targets.tvm.lower_context import attr, const, dtype_of
from edgec.targets.tvm.ops import Unsupported, lowers

_R = relax.op

SUPPORTED = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
             "float16", "float32", "float64", "bfloat16"}


def onnx_dtype(to) -> str | None:
    """The TVM dtype name of ONNX TensorProto data type `to`, or None if TVM has no such type here."""
    import onnx

    if int(to) == onnx.TensorProto.BFLOAT16:
        return "bfloat16"
    try:
        name = str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(int(to))))
    except Exception:
        return None
    return name if name in SUPPORTED else None


def cast_to(ctx, x, to: str):
    src = dtype_of(x)
    if src not in SUPPORTED:
        raise Unsupported(f"cannot cast from {src}")
    if src == to:
        return x
    if to == "bool":
        return _R.not_equal(x, const(0, src) if src != "bfloat16" else relax.const(0.0, src))
    if src == "bfloat16" and to != "float32":
        x = ctx.emit(_R.astype(x, "float32"))
    if to == "bfloat16":
        if src != "float32":
            x = ctx.emit(_R.astype(x, "float32"))
        return _f32_to_bf16(ctx, x)
    return _R.astype(x, to)


# TVM computes bfloat16 in float32 and may drop a float32 -> bfloat16 -> float32 round trip, so
# the rounding to bfloat16 precision (nearest even; NaN kept) is done on float32 bits first.
def _f32_to_bf16(ctx, x):
    bits = ctx.bb.emit_te(topi.reinterpret, x, "uint32")
    lsb = ctx.emit(_R.bitwise_and(_R.right_shift(bits, const(np.uint32(16))), const(np.uint32(1))))
    rounded = ctx.emit(_R.add(bits, _R.add(lsb, const(np.uint32(0x7FFF)))))
    rounded = ctx.emit(_R.bitwise_and(rounded, const(np.uint32(0xFFFF0000))))
    y = ctx.bb.emit_te(topi.reinterpret, rounded, "float32")
    y = ctx.emit(_R.where(_R.not_equal(x, x), x, y))
    return _R.astype(y, "bfloat16")


@lowers("Cast")
def cast(ctx, node, xs):
    to_code = attr(node, "to")
    to = onnx_dtype(to_code)
    if to is None:
        raise Unsupported(f"Cast to ONNX data type {to_code} is not supported by edgec's TVM backend")
    return cast_to(ctx, xs[0], to)


@lowers("CastLike")
def cast_like(ctx, node, xs):
    to = dtype_of(xs[1])
    if to not in SUPPORTED:
        raise Unsupported(f"CastLike to {to} is not supported by edgec's TVM backend")
    return cast_to(ctx, xs[0], to)
