"""Shared pieces of the quantized-operator lowerings (qlinear.py, qlinear_ms.py, qmatmul_ms.py).

The arithmetic follows onnxruntime's CPU kernels (MLAS) wherever they are exact:
- integer products are accumulated in int32 after subtracting the zero points;
- requantization is `y = saturate(round_half_even(float32(acc) * multiplier) + y_zero_point)`
  with the float32 multiplier formed as onnxruntime does (e.g. `x_scale * w_scale / y_scale`);
- quantization of a float is `saturate(round_half_even(x / scale) + zero_point)`.
TVM lowers `round` to LLVM's `nearbyint` (round half to even in the default FP mode).
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.targets.tvm.lower_context import attr, dtype_of, has_input, shape_of
from edgec.targets.tvm.ops import Unsupported

_R = relax.op

QRANGE = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767)}


def check_qtype(dtype: str, what: str) -> str:
    if dtype not in ("uint8", "int8"):
        raise Unsupported(f"{what} must be int8 or uint8, got {dtype}")
    return dtype


def opt(node, xs, i):
    """Input `i` of the node, or None when the optional input is absent."""
    return xs[i] if has_input(node, i) and i < len(xs) else None


def f32(ctx, v):
    return v if dtype_of(v) == "float32" else ctx.emit(_R.astype(v, "float32"))


def i32(ctx, v):
    return ctx.emit(_R.astype(v, "int32"))


def param_size(v) -> int:
    shp = shape_of(v)
    if shp is None:
        raise Unsupported("scale/zero-point inputs must have a static shape")
    return int(np.prod(shp)) if shp else 1


def along(ctx, v, axis: int, rank: int):
    """A quantization parameter (scalar, 1-element, or 1-D per-axis) reshaped so that it
    broadcasts against a rank-`rank` tensor along `axis`. Parameters of rank >= 2 are returned
    as they are (they already follow numpy broadcasting)."""
    shp = shape_of(v)
    n = param_size(v)
    if n == 1:
        return ctx.emit(_R.reshape(v, ())) if shp else v
    if len(shp) != 1:
        return v
    tgt = [1] * rank
    tgt[axis % rank] = n
    return ctx.emit(_R.reshape(v, tgt))


def scalar(ctx, v, what: str):
    """A per-tensor parameter (scalar or 1-element tensor) as a scalar."""
    if param_size(v) != 1:
        raise Unsupported(f"{what} must be a scalar (per-tensor quantization), got shape {shape_of(v)}")
    return along(ctx, v, 0, 1)


def scale(ctx, node, xs, i, what: str, axis: int | None = None, rank: int = 1):
    """Input `i` (a scale) as float32: a scalar, or when `axis` is given possibly per-axis."""
    v = f32(ctx, xs[i])
    return scalar(ctx, v, what) if axis is None else along(ctx, v, axis, rank)


def zero_point(ctx, node, xs, i, axis: int | None = None, rank: int = 1, what: str = "zero point"):
    """Input `i` (a zero point) as int32: a scalar, or when `axis` is given possibly per-axis
    (broadcastable along `axis` of a rank-`rank` tensor); an int32 0 if absent."""
    v = opt(node, xs, i)
    if v is None:
        return relax.const(0, "int32")
    check_qtype(dtype_of(v), what)
    return i32(ctx, scalar(ctx, v, what) if axis is None else along(ctx, v, axis, rank))


def centered(ctx, x, zp_i32):
    """int32(x) - zero point."""
    return ctx.emit(_R.subtract(i32(ctx, x), zp_i32))


def saturate(ctx, y_f32, zp, out_dtype: str, zp_first: bool = False):
    """round_half_even(y) + zp, saturated to `out_dtype` (y and the result are float32 until the cast).
    `zp_first`: round_half_even(y + zp) instead, as onnxruntime's QLinear pooling does (differs on ties)."""
    lo, hi = QRANGE[out_dtype]
    if zp_first:
        r = ctx.emit(_R.round(ctx.emit(_R.add(y_f32, f32(ctx, zp)))))
    else:
        r = ctx.emit(_R.add(ctx.emit(_R.round(y_f32)), f32(ctx, zp)))
    return _R.astype(ctx.emit(_R.clip(r, float(lo), float(hi))), out_dtype)


def requantize(ctx, acc_i32, multiplier_f32, zp, out_dtype: str):
    """saturate(round_half_even(float32(acc) * multiplier) + zp)."""
    return saturate(ctx, ctx.emit(_R.multiply(f32(ctx, acc_i32), multiplier_f32)), zp, out_dtype)


def quantize(ctx, x_f32, scale_f32, zp, out_dtype: str, zp_first: bool = False):
    """saturate(round_half_even(x / scale) + zp), as QuantizeLinear / MlasQuantizeLinear."""
    return saturate(ctx, ctx.emit(_R.divide(x_f32, scale_f32)), zp, out_dtype, zp_first)


def dequantize(ctx, x, scale_f32, zp_i32):
    """float32(x - zp) * scale."""
    return ctx.emit(_R.multiply(f32(ctx, centered(ctx, x, zp_i32)), scale_f32))


def dynamic_qparams(ctx, x_f32):
    """onnxruntime's dynamic uint8 quantization parameters of a float tensor (DynamicQuantizeLinear):
    range [min(x, 0), max(x, 0)], scale = (max - min) / 255, zero point =
    round_half_even(clip(0 - min / scale, 0, 255)). Returns (scale f32 scalar, zero point f32 scalar)."""
    zero = relax.const(0.0, "float32")
    hi = ctx.emit(_R.maximum(ctx.emit(_R.max(x_f32)), zero))
    lo = ctx.emit(_R.minimum(ctx.emit(_R.min(x_f32)), zero))
    scale = ctx.emit(_R.divide(ctx.emit(_R.subtract(hi, lo)), relax.const(255.0, "float32")))
    # all-zero input: onnxruntime uses scale 1 (and thus zero point 0) instead of dividing by 0
    scale = ctx.emit(_R.where(_R.equal(hi, lo), relax.const(1.0, "float32"), scale))
    zp = ctx.emit(_R.subtract(zero, ctx.emit(_R.divide(lo, scale))))
    zp = ctx.emit(_R.round(ctx.emit(_R.clip(zp, 0.0, 255.0))))
    return scale, zp


def conv_pads(node, in_spatial: list[int], kernel: list[int], strides: list[int], dilations: list[int]) -> list[int]:
    """Explicit ONNX pads [begin..., end...] for the node's auto_pad / pads attributes."""
    n = len(kernel)
    auto = attr(node, "auto_pad", "NOTSET")
    if isinstance(auto, bytes):
        auto = auto.decode()
    if auto in ("NOTSET", ""):
        return [int(p) for p in attr(node, "pads", [0] * (2 * n))]
    if auto == "VALID":
        return [0] * (2 * n)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise Unsupported(f"unknown auto_pad {auto!r}")
    begin, end = [], []
    for i in range(n):
        out = -(-in_spatial[i] // strides[i])
        total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_spatial[i], 0)
        small = total // 2
        b = small if auto == "SAME_UPPER" else total - small
        begin.append(b)
        end.append(total - b)
    return begin + end


F32_EXACT = 1 << 24


def centered_bound(ctx, node, i_zp: int, dtype: str) -> int:
    """The largest |a - a_zp| an input of `dtype` can have, a_zp being input `i_zp` (absent: 0;
    not a compile-time scalar: any value of the type)."""
    lo, hi = QRANGE[dtype]
    if not has_input(node, i_zp):
        return max(-lo, hi)
    got = ctx.const_inputs(node, i_zp)
    if got is None or got[0] is None or got[0].size != 1:
        return hi - lo
    z = int(got[0].reshape(-1)[0])
    return max(abs(lo - z), abs(hi - z))


def exact_in_float32(ctx, node, a_bound: int, i_w: int, i_wzp: int, zp_axis: int, reduce_axes) -> bool:
    """True if a float32 kernel computes Σ (a - a_zp)(w - w_zp) exactly, in any summation order: w
    (input `i_w`) and its zero point are compile-time constants and every partial sum is an integer
    below 2^24 in magnitude (Σ|w - w_zp| · max|a - a_zp| < 2^24 for each output). Float kernels
    use edgec's vectorized conv/matmul schedules; int32 ones are the fallback."""
    got = ctx.const_inputs(node, i_w, i_wzp)
    if got is None or got[0] is None:
        return False
    w, wzp = got[0].astype(np.int64), got[1]
    if wzp is not None:
        wzp = wzp.astype(np.int64)
        if wzp.size > 1:
            shape = [1] * w.ndim
            shape[zp_axis] = -1
            wzp = wzp.reshape(shape)
        w = w - wzp
    return int(np.abs(w).sum(axis=tuple(reduce_axes)).max(initial=0)) * a_bound < F32_EXACT


_CONV = {1: _R.nn.conv1d, 2: _R.nn.conv2d, 3: _R.nn.conv3d}


def int_conv(ctx, node, x_i32, w_i32, out_dtype: str = "int32"):
    """ONNX Conv (1-D, 2-D or 3-D, NCHW / OIHW) of int32 tensors with int32 accumulation (or of
    float32 tensors holding integers, when `exact_in_float32` says the result is exact)."""
    xs, ws = shape_of(x_i32), shape_of(w_i32)
    if xs is None or ws is None or len(xs) not in (3, 4, 5) or len(ws) != len(xs):
        raise Unsupported(f"input and weight must be 3-D, 4-D or 5-D with static shapes, got {xs} and {ws}")
    n = len(xs) - 2
    kernel = [int(k) for k in attr(node, "kernel_shape", ws[2:])]
    if kernel != ws[2:]:
        raise Unsupported(f"kernel_shape {kernel} does not match the weight's spatial shape {ws[2:]}")
    strides = [int(s) for s in attr(node, "strides", [1] * n)]
    dilations = [int(d) for d in attr(node, "dilations", [1] * n)]
    pads = conv_pads(node, xs[2:], kernel, strides, dilations)
    return ctx.emit(_CONV[n](x_i32, w_i32, strides=strides, padding=pads, dilation=dilations,
                             groups=int(attr(node, "group", 1)), out_dtype=out_dtype))


def exact_matmul(ctx, node, a_c, b_c, a_bound: int, i_b: int, i_bzp: int, trans_b: bool = False):
    """int32 MatMul(a_c, b_c) of centered operands; computed by a float32 matmul when that is exact
    (`exact_in_float32`; b = input `i_b`, stored [N, K] when `trans_b`, its zero point per column)."""
    axes = ([1], 0) if trans_b else ([-2], -1)
    if exact_in_float32(ctx, node, a_bound, i_b, i_bzp, axes[1], axes[0]):
        return ctx.emit(_R.astype(ctx.emit(_R.matmul(f32(ctx, a_c), f32(ctx, b_c))), "int32"))
    return ctx.emit(_R.matmul(a_c, b_c, out_dtype="int32"))
