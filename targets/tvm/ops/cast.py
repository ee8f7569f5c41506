"""Cast and CastLike across numeric dtypes, bool, float16 and bfloat16.

ONNX semantics: casting to bool is `x != 0`; float -> integer truncates toward zero. Sub-byte
(int2/int4/float4) and float8 types, and strings, are declined with an UnsupportedOpError."""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.targets.tvm.lower_context import attr, const, dtype_of
from edgec.targets.tvm.ops import lowers

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
        raise ValueError(f"cannot cast from {src}")
    if src == to:
        return x
    if to == "bool":
        return _R.not_equal(x, const(0, src) if src != "bfloat16" else relax.const(0.0, src))
    if src == "bfloat16" and to != "float32":
        x = ctx.emit(_R.astype(x, "float32"))
    if to == "bfloat16" and src != "float32":
        x = ctx.emit(_R.astype(x, "float32"))
    return _R.astype(x, to)


@lowers("Cast")
def cast(ctx, node, xs):
    to_code = attr(node, "to")
    to = onnx_dtype(to_code)
    if to is None:
        raise ValueError(f"Cast to ONNX data type {to_code} is not supported by edgec's TVM backend")
    return cast_to(ctx, xs[0], to)


@lowers("CastLike")
def cast_like(ctx, node, xs):
    to = dtype_of(xs[1])
    if to not in SUPPORTED:
        raise ValueError(f"CastLike to {to} is not supported by edgec's TVM backend")
    return cast_to(ctx, xs[0], to)
